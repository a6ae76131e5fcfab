import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { tempDataDir } from './ids';
import { freePort, waitFor } from './processes';

/** True when something on 127.0.0.1:`port` answers PING with PONG. */
function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (b) => {
      answer += b.toString();
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}

/**
 * A `redis-server` of one test file's own, on a free port, never the shared one on 6379. Nothing
 * is persisted (`--save '' --appendonly no`): after `restart()` it comes back empty, as a Redis
 * without persistence does after a crash. `redis-server` must be on PATH (infra/ensure-redis.sh
 * installs it).
 */
export class PrivateRedis {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly dir = tempDataDir('capstan-redis-');
  /** The server's last output lines, for diagnosis. */
  readonly output: string[] = [];

  private constructor(readonly port: number) {}

  /** Starts one on a free port and waits until it answers. */
  static async start(): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort());
    await r.start();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the server (again) on the same port, empty; resolves once it answers PING. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`redis-server on port ${this.port} is already running`);
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const failed = new Promise<never>((_, reject) => child.once('error', (err) => {
      this.child = undefined;
      reject(new Error(`cannot start redis-server (bash infra/ensure-redis.sh installs it): ${err.message}`, { cause: err }));
    }));
    const keep = (b: Buffer) => {
      this.output.push(...b.toString().split('\n').filter(Boolean));
      if (this.output.length > 200) this.output.splice(0, this.output.length - 200);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    await Promise.race([failed, waitFor(() => pong(this.port), 15_000, `redis-server on port ${this.port} to answer PING`)]);
  }

  /** SIGKILL: a crash, everything in memory lost. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGKILL');
    await this.exited;
  }

  /** Kills it and starts it again, empty, on the same port. */
  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  /** Stops it for good and removes its directory. */
  async stop(): Promise<void> {
    await this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
