import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

// test/helpers under jest, dist/test/helpers when a compiled script (a benchmark) runs this.
const ROOT = [path.resolve(__dirname, '../..'), path.resolve(__dirname, '../../..')].find((d) => fs.existsSync(path.join(d, 'package.json')))!;
const MAIN = path.join(ROOT, 'dist/services/main.js');

/** A free TCP port on 127.0.0.1 (closed again before it is returned). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** One Capstan process started from the build (`npm run build` first), with its output kept for diagnosis. */
export interface CapstanProcess {
  name: string;
  child: ChildProcess;
  output: string[];
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** The built edge agent, for tests that run a real agent process. */
export const AGENT_MAIN = path.join(ROOT, 'dist/agent/main.js');

/** Starts `node dist/services/main.js` (or `script`) with the given env, using the pinned Node. */
export function startProcess(name: string, env: Record<string, string>, script = MAIN): CapstanProcess {
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', CAPSTAN_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const keep = (b: Buffer) => {
    output.push(...b.toString().split('\n').filter(Boolean));
    if (output.length > 2000) output.splice(0, output.length - 2000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    name, child, output, exited,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Polls `probe` until it resolves truthy, or fails with the last error after `timeoutMs`. */
export async function waitFor<T>(probe: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
