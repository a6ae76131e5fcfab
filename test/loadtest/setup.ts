/**
 * Getting the server ready through its public API: the admin, the Edge environments (created, or
 * reused from an earlier run), their check-in interval and their trust.
 */
import crypto from 'node:crypto';
import { Agent, request } from 'undici';
import { pool } from '../../shared/concurrency';
import { decodeEdgeKey } from '../../shared/crypto';
import type { ModeDefinition } from './modes';
import type { LoadTestOptions } from './options';

/** Environments made by the load test are named `loadtest-<run>-<n>`; --reuse finds them by this prefix. */
export const NAME_PREFIX = 'loadtest-';

/** One simulated agent's identity. */
export interface AgentIdentity {
  endpointId: number;
  edgeId: string;
  /** API URL from the environment's Edge key: where the agent checks in. */
  apiUrl: string;
  /** Tunnel server `host:port` and its key fingerprint, from the Edge key. */
  tunnelAddr: string;
  fingerprint: string;
}

/** Environment fields the load test reads. */
interface Env {
  Id: number;
  Name: string;
  Type: number;
  EdgeID: string;
  EdgeKey: string;
  EdgeCheckinInterval: number;
  UserTrusted: boolean;
  Edge?: { AsyncMode?: boolean };
}

/** A small admin client over one undici pool. */
export class AdminClient {
  private readonly dispatcher: Agent;
  private auth: Record<string, string> = {};

  constructor(readonly base: string, insecure: boolean, connections: number) {
    this.dispatcher = new Agent({ connect: { rejectUnauthorized: !insecure }, connections });
  }

  async call<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; headers: Record<string, unknown>; json: T; text: string }> {
    const headers: Record<string, string> = { ...this.auth };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await request(this.base + path, {
      method: method as 'GET', headers, body: body === undefined ? undefined : JSON.stringify(body), dispatcher: this.dispatcher,
    });
    const text = await res.body.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch { /* not JSON */ }
    return { status: res.statusCode, headers: res.headers, json, text };
  }

  /** Makes the administrator on a fresh server, when asked to. */
  async initAdmin(username: string, password: string): Promise<void> {
    if ((await this.call('GET', '/api/users/admin/check')).status !== 404) return;
    const r = await this.call('POST', '/api/users/admin/init', { Username: username, Password: password });
    if (r.status !== 200) throw new Error(`creating the administrator failed: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  }

  async signIn(o: Pick<LoadTestOptions, 'apiKey' | 'username' | 'password'>): Promise<void> {
    if (o.apiKey) {
      this.auth = { 'x-api-key': o.apiKey };
    } else {
      const r = await this.call('POST', '/api/auth', { Username: o.username, Password: o.password });
      if (r.status !== 200) throw new Error(`sign-in as ${o.username} failed: HTTP ${r.status} ${r.text.slice(0, 300)}`);
      this.auth = { authorization: `Bearer ${r.json.jwt}` };
    }
    const me = await this.call('GET', '/api/settings');
    if (me.status !== 200) throw new Error(`the credentials do not give admin access: GET /api/settings answered HTTP ${me.status} ${me.text.slice(0, 300)}`);
  }

  /** The headers that authenticate as the admin (API key or JWT). */
  get authHeaders(): Record<string, string> {
    return { ...this.auth };
  }

  close(): Promise<void> {
    return this.dispatcher.close();
  }
}

/** What provisioning did, for the report. */
export interface Provisioned {
  agents: AgentIdentity[];
  created: number;
  reused: number;
  intervalUpdated: number;
  createSeconds: number;
  notes: string[];
}

/** Every environment named loadtest-*, by Id, through `GET /api/endpoints` in pages. */
async function listLoadTestEnvironments(client: AdminClient): Promise<Env[]> {
  const out: Env[] = [];
  const limit = 1000;
  for (let start = 0; ; start += limit) {
    const r = await client.call<Env[]>('GET', `/api/endpoints?search=${encodeURIComponent(NAME_PREFIX)}&start=${start}&limit=${limit}&sort=Id`);
    if (r.status !== 200) throw new Error(`listing environments failed: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    out.push(...r.json.filter((e) => e.Name.startsWith(NAME_PREFIX) && (e.Type === 4 || e.Type === 7)));
    if (r.json.length < limit) break;
  }
  return out.sort((a, b) => a.Id - b.Id);
}

/**
 * Makes `opts.agents` Edge environments ready to accept agents: reused ones first (with --reuse),
 * the rest created; each gets the interval; trust is checked. Progress goes to `log`.
 */
export async function provision(client: AdminClient, opts: LoadTestOptions, mode: ModeDefinition, log: (line: string) => void): Promise<Provisioned> {
  const notes: string[] = [];
  const envs: Env[] = [];
  let intervalUpdated = 0;
  if (opts.reuse) {
    const found = await listLoadTestEnvironments(client);
    // Async environments for --mode async, standard ones otherwise (poll and push).
    const wantAsync = !!mode.setup.createFields.EdgeAsync;
    const fit = found.filter((e) => !!e.Edge?.AsyncMode === wantAsync);
    envs.push(...fit.slice(0, opts.agents));
    log(`reusing ${envs.length} environment(s) named ${NAME_PREFIX}* (${found.length} found${fit.length < found.length ? `, ${found.length - fit.length} of them ${wantAsync ? 'standard' : 'async'}, not for --mode ${mode.name}` : ''})`);
    const stale = envs.filter((e) => e.EdgeCheckinInterval !== opts.intervalS);
    await pool(stale, opts.concurrency, async (e) => {
      const r = await client.call<Env>('PUT', `/api/endpoints/${e.Id}`, { EdgeCheckinInterval: opts.intervalS });
      if (r.status !== 200) throw new Error(`setting the check-in interval of environment ${e.Id} failed: HTTP ${r.status} ${r.text.slice(0, 300)}`);
      Object.assign(e, r.json);
    });
    intervalUpdated = stale.length;
    if (stale.length) log(`set the check-in interval of ${stale.length} reused environment(s) to ${opts.intervalS} s`);
  }
  const reused = envs.length;
  const missing = opts.agents - envs.length;
  const run = Date.now().toString(36);
  const t0 = Date.now();
  let errors = 0;
  let firstError = '';
  const created: Env[] = new Array(Math.max(0, missing));
  await pool(created, opts.concurrency, async (_e, i) => {
    const r = await client.call<Env>('POST', '/api/endpoints', {
      Name: `${NAME_PREFIX}${run}-${i + 1}`, EndpointCreationType: 4, URL: client.base, EdgeCheckinInterval: opts.intervalS, ...mode.setup.createFields,
    });
    if (r.status !== 200) {
      errors++;
      firstError ||= `HTTP ${r.status} ${r.text.slice(0, 300)}`;
      return;
    }
    created[i] = r.json;
    if ((i + 1) % 1000 === 0) log(`created ${i + 1}/${missing} environments`);
  });
  const createSeconds = (Date.now() - t0) / 1000;
  if (errors) throw new Error(`${errors} of ${missing} environments could not be created; first: ${firstError}`);
  if (missing > 0) log(`created ${missing} environments in ${createSeconds.toFixed(1)} s (${(missing / createSeconds).toFixed(0)}/s, ${opts.concurrency} in parallel)`);
  envs.push(...created);

  const agents = envs.map((e): AgentIdentity => {
    const key = decodeEdgeKey(e.EdgeKey);
    if (key.endpointId !== e.Id) throw new Error(`environment ${e.Id}'s Edge key names environment ${key.endpointId}`);
    // An environment bound by an earlier run only accepts that Edge ID.
    return { endpointId: key.endpointId, edgeId: e.EdgeID || crypto.randomUUID(), apiUrl: key.apiUrl, tunnelAddr: key.tunnelAddr, fingerprint: key.fingerprint };
  });

  // Trust (reference 1.7 step 7): the environment must be trusted, or the settings trust on first connect.
  const settings = await client.call('GET', '/api/settings');
  const untrusted = envs.filter((e) => !e.UserTrusted).length;
  if (untrusted && !settings.json.TrustOnFirstConnect) {
    const r = await client.call('PUT', '/api/settings', { TrustOnFirstConnect: true });
    if (r.status !== 200) throw new Error(`turning on TrustOnFirstConnect failed: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    notes.push(`${untrusted} environment(s) were not trusted: turned on TrustOnFirstConnect in the settings`);
  }
  const wanted = mode.setup.settingsFor?.(opts.intervalS);
  if (wanted && !contains(settings.json, wanted)) {
    const r = await client.call('PUT', '/api/settings', wanted);
    if (r.status !== 200) throw new Error(`PUT /api/settings ${JSON.stringify(wanted)} failed: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    notes.push(`settings changed for --mode ${mode.name}: ${JSON.stringify(wanted)}`);
  }
  return { agents, created: Math.max(0, missing), reused, intervalUpdated, createSeconds, notes };
}

/** Whether `have` already holds every value of `want` (nested objects compared field by field). */
function contains(have: any, want: any): boolean {
  if (typeof want !== 'object' || want === null) return have === want;
  return typeof have === 'object' && have !== null && Object.entries(want).every(([k, v]) => contains(have[k], v));
}
