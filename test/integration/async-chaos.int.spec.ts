import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { docker, ensureTestImage, removeContainersNamed, TEST_IMAGE as IMAGE } from '../helpers/docker';
import { api } from '../helpers/http';
import { tempDataDir, uniqueNamespace } from '../helpers/ids';
import { AGENT_MAIN, freePort, startProcess, waitFor, type CapstanProcess } from '../helpers/processes';
import { PrivateRedis } from '../helpers/redis-server';
import { adminToken } from '../helpers/server';

const withDocker = process.env.CAPSTAN_TEST_NO_DOCKER === '1' ? describe.skip : describe;
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
jest.setTimeout(120_000);

/** Commands queued per request, and requests: 100 commands in all. */
const PER_REQUEST = 25;
const REQUESTS = 4;
const TOTAL = PER_REQUEST * REQUESTS;
/**
 * Gates: `POST /containers/<gate>/wait` on a running container blocks the agent at that seq until
 * the test kills the container, so the chaos lands at a known point of the delivery on any machine.
 * a (first reply, 1-50): polling and Redis die; b (second reply, 51-100): the agent is stopped and
 * started again; c (the restarted agent's reply, 76-100): commands dies.
 */
const GATES = { a: 25, b: 75, c: 90 } as const;
type Gate = keyof typeof GATES;

type Kind = 'create' | 'rename' | 'start' | 'kill' | 'gate';
interface Planned { seq: number; kind: Kind; spec: Record<string, unknown> }
interface LedgerCommand { Seq: number; Status: string; Error?: string; Result?: { status?: number; body?: unknown } }

/**
 * Chaos against the real dockerd in the distributed shape: with the agent offline, 100 commands
 * are queued whose final container states prove their order; the polling and commands processes
 * are SIGKILLed and Redis crashes (coming back empty, so the delivery queue must be rebuilt from
 * the ledger) while the delivery is under way, and the agent is restarted; in the end every
 * command ran exactly once, in order.
 */
withDocker('async commands under chaos (real dockerd, NATS, Redis, separate processes)', () => {
  const tag = `capstan-chaos-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  const namespace = uniqueNamespace('chaos');
  const dataDir = tempDataDir('capstan-chaos-');
  const agentData = tempDataDir('capstan-chaos-agent-');
  const procs: Record<string, CapstanProcess> = {};
  /** Every agent process, in start order: their logs together are the agent's history. */
  const agents: CapstanProcess[] = [];
  const timings: string[] = [];
  let redis: PrivateRedis;
  let base: string;
  let token: string;
  let envId: number;
  let edgeKey: string;
  let generation = 0;

  const capstan = (name: string, env: Record<string, string>) => {
    const id = `${name}-${++generation}`;
    procs[id] = startProcess(id, {
      CAPSTAN_NAMESPACE: namespace, CAPSTAN_TRANSPORTER: NATS_URL, REDIS_URL: redis.url, CAPSTAN_NODE_ID: id,
      CAPSTAN_DATA_DIR: path.join(dataDir, name), CAPSTAN_LOG_LEVEL: 'info', ...env,
    });
    return procs[id];
  };
  const startAgent = () => {
    const p = startProcess(`agent-${agents.length + 1}`, {
      EDGE: '1', EDGE_ASYNC: '1', EDGE_KEY: edgeKey, EDGE_ID: 'chaos-host', EDGE_INSECURE_POLL: '1', DATA_PATH: agentData, LOG_LEVEL: 'debug',
    }, AGENT_MAIN);
    agents.push(p);
    return p;
  };
  const sigkill = async (p: CapstanProcess) => {
    p.child.kill('SIGKILL');
    await p.exited;
  };

  /** The agent's log lines about commands, across every agent process, in order. */
  const agentRuns = () => agents.flatMap((a) => a.output).flatMap((line) => {
    try {
      const o = JSON.parse(line) as { msg?: string; seq?: number; error?: string };
      return o.msg === 'command succeeded' || o.msg === 'command failed' ? [{ ok: o.msg === 'command succeeded', seq: o.seq!, error: o.error }] : [];
    } catch {
      return [];
    }
  });
  const agentReached = (seq: number) => agentRuns().some((r) => r.seq >= seq);
  const agentLog = (re: RegExp) => agents.flatMap((a) => a.output).filter((l) => re.test(l));

  const ledger = async (): Promise<LedgerCommand[]> => {
    const res = await api(base, 'GET', `/api/endpoints/${envId}/commands?limit=${TOTAL}`, { token });
    if (res.status !== 200) throw new Error(`commands list: ${res.status} ${res.text}`);
    return res.body as LedgerCommand[];
  };
  /** Seqs by status, e.g. `{delivered: '1-50', queued: '51-100'}`, for readable waits and failures. */
  const ledgerSummary = async () => {
    const by: Record<string, number[]> = {};
    for (const c of await ledger()) (by[c.Status] ??= []).push(c.Seq);
    return Object.fromEntries(Object.entries(by).map(([s, seqs]) => [s, ranges(seqs)]));
  };
  const statusesOf = async (from: number, to: number) => new Set((await ledger()).filter((c) => c.Seq >= from && c.Seq <= to).map((c) => c.Status));

  /** Polling answers an exchange for an unknown environment with its own 404 once it is up (503 before). */
  const pollingServes = async () => (await api(base, 'POST', '/api/endpoints/edge/async', {
    body: { endpointId: 999_999 }, headers: { 'X-PortainerAgent-EdgeID': 'probe', 'Portainer-Agent': '2.23.0', 'Portainer-Agent-Platform': '1' },
  })).status === 404;

  // ---- the plan: what each seq does, and the final states it leads to ----
  const gateName = (g: Gate) => `${tag}-gate-${g}`;
  const chainName = (k: number) => `${tag}-chain-${k}`;
  const witness = `${tag}-witness`;
  const create = (name: string, seq: number, cmd: string[]) => ({
    Type: 'dockerRequest', Method: 'POST', Path: '/containers/create', Query: { name },
    Body: { Image: IMAGE, Cmd: cmd, Labels: { 'capstan.chaos': tag, 'capstan.seq': String(seq) }, HostConfig: { NetworkMode: 'none' } },
  });
  const plan: Planned[] = [];
  let renames = 0;
  let witnessOps = 0;
  for (let seq = 1; seq <= TOTAL; seq++) {
    const gate = (Object.keys(GATES) as Gate[]).find((g) => GATES[g] === seq);
    if (seq === 1) plan.push({ seq, kind: 'create', spec: create(chainName(0), seq, ['true']) });
    else if (seq === 2) plan.push({ seq, kind: 'create', spec: create(witness, seq, ['sleep', '3600']) });
    else if (gate) plan.push({ seq, kind: 'gate', spec: { Type: 'dockerRequest', Method: 'POST', Path: `/containers/${gateName(gate)}/wait` } });
    else if (seq % 3 === 0) plan.push({ seq, kind: 'create', spec: create(`${tag}-c${seq}`, seq, ['true']) });
    else if (seq % 3 === 1) {
      // Renamed step by step: a rename run out of order, skipped or twice finds no container of its source name.
      plan.push({ seq, kind: 'rename', spec: { Type: 'dockerRequest', Method: 'POST', Path: `/containers/${chainName(renames)}/rename`, Query: { name: chainName(renames + 1) } } });
      renames++;
    } else {
      // start, kill, start, …: starting a running container is a no-op, killing a stopped one fails.
      const op = witnessOps++ % 2 === 0 ? 'start' : 'kill';
      plan.push({ seq, kind: op, spec: { Type: 'container', ContainerName: witness, ContainerOperation: op } });
    }
  }
  const lastWitnessOp = plan.filter((p) => p.kind === 'start' || p.kind === 'kill').at(-1)!.kind;
  const expectedResult: Partial<Record<Kind, number>> = { create: 201, rename: 204, gate: 200 };

  beforeAll(async () => {
    await ensureTestImage();
    redis = await PrivateRedis.start();
    const port = await freePort();
    base = `https://127.0.0.1:${port}`;
    capstan('main', {
      CAPSTAN_SERVICES: 'gateway,state,rbac,tunnel,snapshots', CAPSTAN_ELECTION: 'local', CAPSTAN_HOST: '127.0.0.1',
      CAPSTAN_HTTPS_PORT: String(port), CAPSTAN_TUNNEL_PORT: String(await freePort()),
    });
    await waitFor(async () => (await api(base, 'GET', '/api/system/status')).status === 200, 60_000, 'the gateway to serve through NATS');
    token = await adminToken(base, 'admin', 'a-long-password');
    const env = await api(base, 'POST', '/api/endpoints', {
      token, body: { Name: 'chaos-host', EndpointCreationType: 4, URL: base, EdgeAsync: true, EdgePingInterval: 1, EdgeCommandInterval: 1, EdgeSnapshotInterval: 5 },
    });
    expect(`${env.status} ${env.text}`).toMatch(/^200 /);
    envId = env.body.Id;
    edgeKey = env.body.EdgeKey;
    // Started after the environment exists: a polling replica misses the `environment.changed`
    // broadcast during its first second or so (Moleculer announces its listeners only after
    // `started()`, which is where it seeds), and would then answer 404 to this agent for good.
    capstan('polling', { CAPSTAN_SERVICES: 'polling' });
    capstan('commands', { CAPSTAN_SERVICES: 'commands' });
    await waitFor(pollingServes, 60_000, 'polling to serve exchanges');
    await waitFor(async () => (await api(base, 'GET', `/api/commands/batches/${crypto.randomUUID()}`, { token })).status === 404, 60_000, 'the commands service to answer');
    for (const g of Object.keys(GATES) as Gate[]) await docker('run', '-d', '--name', gateName(g), '--network', 'none', IMAGE, 'sleep', '600');
  });

  afterAll(async () => {
    await Promise.all([...agents, ...Object.values(procs)].map((p) => p.kill()));
    // Each process's log is kept for diagnosis of a failed run.
    for (const p of [...agents, ...Object.values(procs)]) fs.writeFileSync(path.join(os.tmpdir(), `capstan-${namespace}-${p.name}.log`), p.output.join('\n'));
    if (redis) fs.writeFileSync(path.join(os.tmpdir(), `capstan-${namespace}-redis.log`), redis.output.join('\n'));
    await redis?.stop();
    await removeContainersNamed(tag);
    for (const d of [dataDir, agentData]) fs.rmSync(d, { recursive: true, force: true });
  });

  it('runs 100 commands exactly once, in order, through SIGKILLed polling and commands processes, a Redis that comes back empty and an agent restart', async () => {
    const t0 = Date.now();
    const mark = (what: string) => timings.push(`${((Date.now() - t0) / 1000).toFixed(1)} s ${what}`);

    // The agent binds and sends its first snapshot, then goes offline.
    const first = startAgent();
    await waitFor(async () => {
      const e = (await api(base, 'GET', `/api/endpoints/${envId}`, { token })).body;
      return e?.EdgeID === 'chaos-host' && e.Snapshots?.length > 0;
    }, 45_000, 'the agent to bind and send its first snapshot');
    await first.kill();
    mark('agent bound, sent its first snapshot, stopped');

    // 100 commands in 4 requests while the agent is offline: seqs 1..100 in request order.
    const batches: string[] = [];
    for (let r = 0; r < REQUESTS; r++) {
      const specs = plan.slice(r * PER_REQUEST, (r + 1) * PER_REQUEST).map((p) => p.spec);
      const res = await waitFor(async () => {
        const q = await api(base, 'POST', `/api/endpoints/${envId}/commands`, { token, body: { Commands: specs } });
        if (q.status !== 201) throw new Error(`${q.status} ${q.text}`);
        return q;
      }, 30_000, `request ${r + 1} of commands to be queued`);
      expect(res.body.Deferred).toBe(false);
      expect(res.body.Commands.map((c: { Seq: number }) => c.Seq)).toEqual(plan.slice(r * PER_REQUEST, (r + 1) * PER_REQUEST).map((p) => p.seq));
      batches.push(res.body.BatchId);
    }
    expect(await ledgerSummary()).toEqual({ queued: `1-${TOTAL}` });
    mark(`${TOTAL} commands queued in ${REQUESTS} requests`);
    const deliveryStart = Date.now();

    // Phase A: the agent is back and blocked in the first reply at gate a; polling and Redis die.
    startAgent();
    await waitFor(async () => agentReached(GATES.a - 1) && (await statusesOf(1, 50)).has('delivered'), 45_000, `the agent to run up to gate a (seq ${GATES.a})`);
    await waitFor(async () => JSON.stringify(await ledgerSummary()) === JSON.stringify({ delivered: '1-50', queued: `51-${TOTAL}` }), 15_000, 'the first reply (1-50) to be recorded as delivered');
    const pollingA = Object.values(procs).find((p) => p.name.startsWith('polling'))!;
    await Promise.all([sigkill(pollingA), redis.kill()]);
    const failedBefore = agentLog(/async exchange failed/).length;
    mark(`agent blocked at seq ${GATES.a}; polling SIGKILLed, Redis crashed`);
    await docker('kill', gateName('a'));
    await waitFor(async () => agentReached(50) && agentLog(/async exchange failed/).length > failedBefore, 45_000, 'the agent to finish the first reply and fail to reach polling');
    mark('agent finished 1-50 and cannot exchange');
    capstan('polling', { CAPSTAN_SERVICES: 'polling' });
    // With Redis still down, its acks are recorded (state) but nothing new is handed out.
    await waitFor(async () => JSON.stringify(await ledgerSummary()) === JSON.stringify({ succeeded: '1-50', queued: `51-${TOTAL}` }), 45_000, 'the acks of 1-50 to be recorded through the new polling process');
    mark('new polling process up: 1-50 succeeded, 51-100 still queued (Redis down)');
    await redis.start();
    mark('Redis back, empty');

    // Phase B: the rebuilt queue delivers 51..100; the agent is stopped (SIGTERM) while blocked at
    // gate b, so it stops right after that command, and started again on the same journal.
    await waitFor(async () => agentReached(GATES.b - 1), 45_000, `the agent to get 51-100 from the rebuilt queue and run up to gate b (seq ${GATES.b})`);
    await waitFor(async () => JSON.stringify(await ledgerSummary()) === JSON.stringify({ succeeded: '1-50', delivered: `51-${TOTAL}` }), 15_000, 'the second reply (51-100) to be recorded as delivered');
    const second = agents.at(-1)!;
    second.child.kill('SIGTERM');
    const releasedAt = Date.now();
    await docker('kill', gateName('b'));
    await second.exited;
    mark(`agent stopped by SIGTERM at gate b (seq ${GATES.b}), the gate released ${Date.now() - releasedAt} ms later`);
    expect(Math.max(...agentRuns().map((r) => r.seq))).toBe(GATES.b);
    startAgent();

    // Phase C: the restarted agent gets the rest (76..100) and blocks at gate c; commands dies, so
    // its results for 76..100 reach a polling process that cannot record them; then a new one starts.
    await waitFor(async () => agentReached(GATES.c - 1), 45_000, `the restarted agent to run up to gate c (seq ${GATES.c})`);
    await waitFor(async () => JSON.stringify(await ledgerSummary()) === JSON.stringify({ succeeded: `1-${GATES.b}`, delivered: `${GATES.b + 1}-${TOTAL}` }), 15_000, `the acks of 51-${GATES.b} to be recorded`);
    const commandsA = Object.values(procs).find((p) => p.name.startsWith('commands'))!;
    await sigkill(commandsA);
    mark(`restarted agent blocked at seq ${GATES.c}; commands SIGKILLed`);
    const pollingB = Object.values(procs).filter((p) => p.name.startsWith('polling')).at(-1)!;
    const notRecordedBefore = pollingB.output.filter((l) => /command results not recorded/.test(l)).length;
    await docker('kill', gateName('c'));
    await waitFor(async () => agentReached(TOTAL) && pollingB.output.filter((l) => /command results not recorded/.test(l)).length > notRecordedBefore, 45_000, 'the agent to finish and report while commands is down');
    mark(`agent ran up to ${TOTAL}, its results not recorded (commands down)`);
    capstan('commands', { CAPSTAN_SERVICES: 'commands' });

    await waitFor(async () => JSON.stringify(await ledgerSummary()) === JSON.stringify({ succeeded: `1-${TOTAL}` }), 60_000, 'every command to be recorded as succeeded')
      .catch(async (err) => {
        throw new Error(`${(err as Error).message}; ledger ${JSON.stringify(await ledgerSummary().catch(() => null))}; agent ran ${ranges(agentRuns().map((r) => r.seq))}`);
      });
    const deliveryMs = Date.now() - deliveryStart;
    mark('all 100 succeeded in the ledger');

    // The ledger: each command succeeded with what its Docker call answered.
    const final = await ledger();
    expect(final.map((c) => c.Seq)).toEqual(plan.map((p) => p.seq));
    // A result missing means the agent's ack was lost and a watermark finished the command blind.
    const wrong = final.filter((c) => c.Status !== 'succeeded' || c.Result?.status !== expectedResult[plan[c.Seq - 1].kind])
      .map((c) => `seq ${c.Seq} (${plan[c.Seq - 1].kind}): ${c.Status}, result ${JSON.stringify(c.Result ?? null)}${c.Error ? `, error ${c.Error}` : ''}`);
    expect(wrong).toEqual([]);
    for (const id of batches) {
      const b = await api(base, 'GET', `/api/commands/batches/${id}`, { token });
      expect(b.body.Counts).toEqual({ queued: 0, delivered: 0, succeeded: PER_REQUEST, failed: 0 });
    }

    // The agent: each seq run once, in order, across its three processes; none failed.
    const runs = agentRuns();
    expect(runs.filter((r) => !r.ok)).toEqual([]);
    expect(runs.map((r) => r.seq)).toEqual(plan.map((p) => p.seq));

    // Docker: one container per create, created in seq order; the chain renamed to its end; the witness as its last op left it.
    const { stdout } = await docker('ps', '-aq', '--filter', `label=capstan.chaos=${tag}`);
    const inspected = JSON.parse((await docker('inspect', ...stdout.trim().split('\n'))).stdout) as { Name: string; Created: string; Config: { Labels: Record<string, string> }; State: { Status: string } }[];
    const creates = plan.filter((p) => p.kind === 'create').map((p) => p.seq);
    expect(inspected.map((c) => Number(c.Config.Labels['capstan.seq'])).sort((a, b) => a - b)).toEqual(creates);
    const byCreation = [...inspected].sort((a, b) => (createdNs(a.Created) < createdNs(b.Created) ? -1 : 1));
    expect(byCreation.map((c) => Number(c.Config.Labels['capstan.seq']))).toEqual(creates);
    expect(inspected.find((c) => c.Config.Labels['capstan.seq'] === '1')?.Name).toBe(`/${chainName(renames)}`);
    expect(inspected.find((c) => c.Name === `/${witness}`)?.State.Status).toBe(lastWitnessOp === 'start' ? 'running' : 'exited');

    mark('checked');
    process.stdout.write(`async chaos: ${TOTAL} commands delivered in ${(deliveryMs / 1000).toFixed(1)} s through the chaos\n  ${timings.join('\n  ')}\n`);
    expect(deliveryMs).toBeLessThan(90_000);
  });
});

/** Docker's `Created` (RFC 3339 with up to 9 fraction digits, trailing zeros dropped) in nanoseconds. */
function createdNs(created: string): bigint {
  const m = /^(.*?)(?:\.(\d+))?Z$/.exec(created);
  if (!m) throw new Error(`unexpected Created: ${created}`);
  return BigInt(Date.parse(`${m[1]}Z`)) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/** `[1,2,3,5]` → `'1-3,5'`. */
function ranges(seqs: number[]): string {
  const s = [...seqs].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < s.length; i++) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j] + 1) j++;
    out.push(i === j ? String(s[i]) : `${s[i]}-${s[j]}`);
    i = j;
  }
  return out.join(',');
}
