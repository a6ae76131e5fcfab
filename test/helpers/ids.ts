import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A fresh data directory under the OS temp dir. */
export function tempDataDir(prefix = 'capstan-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A unique Moleculer namespace (and Redis key prefix) per test, so files run in parallel on one NATS/Redis. */
export function uniqueNamespace(tag: string): string {
  return `t${tag.replace(/[^A-Za-z0-9]/g, '').slice(0, 12)}${process.pid}${Math.random().toString(36).slice(2, 8)}`;
}
