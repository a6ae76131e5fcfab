/**
 * API benchmark: creates N environments through the public API, then measures
 * `GET /api/endpoints` (a page of 100, with search and sort) latency.
 *
 *   npm run bench:api -- [--count 15000] [--concurrency 32] [--queries 500] [--target https://host:9443 --username admin --password ...]
 *
 * Without --target it starts Capstan's embedded default as a child process on a free port with a
 * temporary data directory (a real separate server process, as in production).
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { api } from '../helpers/http';
import { adminToken, startBenchServer, type BenchServer } from '../helpers/server';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '15000' },
    concurrency: { type: 'string', default: '32' },
    queries: { type: 'string', default: '500' },
    target: { type: 'string' },
    username: { type: 'string', default: 'admin' },
    password: { type: 'string', default: 'bench-password-123' },
  },
});
const COUNT = Number(args.count);
const CONCURRENCY = Number(args.concurrency);
const QUERIES = Number(args.queries);
const SITES = ['amsterdam', 'berlin', 'chicago', 'dublin', 'essen', 'frankfurt', 'geneva', 'houston', 'istanbul', 'jakarta',
  'kyoto', 'lisbon', 'madrid', 'nairobi', 'oslo', 'paris', 'quito', 'rome', 'seoul', 'tokyo'];

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const fmt = (ms: number) => `${ms.toFixed(2)} ms`;

async function main() {
  let server: BenchServer | undefined;
  let base = args.target;
  if (!base) {
    server = await startBenchServer();
    base = server.base;
  }
  try {
    const token = await adminToken(base, args.username!, args.password!);

    const runId = Date.now().toString(36);
    let next = 0;
    let errors = 0;
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < COUNT) {
        const i = next++;
        const res = await api(base!, 'POST', '/api/endpoints', {
          token, body: { Name: `edge-${SITES[i % SITES.length]}-${runId}-${i}`, EndpointCreationType: 4, URL: 'https://capstan.example.com:9443' },
        });
        if (res.status !== 200) errors++;
        if (i % 1000 === 999) process.stdout.write(`\r  created ${i + 1}/${COUNT}`);
      }
    }));
    const createdS = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write('\n');

    const measure = async (label: string, pathFor: (i: number) => string) => {
      const lat: number[] = [];
      let total = '';
      for (let i = 0; i < QUERIES; i++) {
        const s = process.hrtime.bigint();
        const res = await api(base!, 'GET', pathFor(i), { token });
        lat.push(Number(process.hrtime.bigint() - s) / 1e6);
        if (res.status !== 200) throw new Error(`${label}: ${res.status} ${res.text}`);
        total = String(res.headers['x-total-count']);
      }
      lat.sort((a, b) => a - b);
      console.log(`  ${label.padEnd(44)} p50 ${fmt(pct(lat, 50))}  p99 ${fmt(pct(lat, 99))}  max ${fmt(lat[lat.length - 1])}  (X-Total-Count ${total})`);
    };

    console.log(`\nCapstan API benchmark against ${base}`);
    console.log(`  created ${COUNT} environments in ${createdS.toFixed(1)} s (${(COUNT / createdS).toFixed(0)}/s, concurrency ${CONCURRENCY}, ${errors} errors)`);
    console.log(`GET /api/endpoints, ${QUERIES} sequential requests each:`);
    await measure('page of 100, search=<site>, sort=Name', (i) => `/api/endpoints?limit=100&start=${(i * 100) % 700}&search=${SITES[i % SITES.length]}&sort=Name`);
    await measure('page of 100, search=<unique name>', (i) => `/api/endpoints?limit=100&search=${runId}-${(i * 37) % COUNT}`);
    await measure('page of 100, no search', (i) => `/api/endpoints?limit=100&start=${(i * 100) % COUNT}`);
    if (errors) process.exitCode = 1;
  } finally {
    await server?.process.kill();
    if (server) fs.rmSync(server.dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
