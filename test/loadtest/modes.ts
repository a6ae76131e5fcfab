/**
 * What one simulated check-in is, per protocol mode. A mode says which request an agent sends and
 * how it reads the reply (the interval the server asks for); the worker owns connections, timing
 * and measurement, so a new mode plugs in here and in `MODES` only.
 */
import { serializeRequest, type HeaderPair, type RawResponse } from './http1';

/** Agent version and platform the simulated agents announce (the repo's agent announces the same). */
export const AGENT_VERSION = '2.23.0';
/** Go's `time.Local.String()` on a host without TZ, what most real agents send. */
const TIME_ZONE = 'Local';

/** One simulated agent as a mode sees it. */
export interface ModeAgent {
  endpointId: number;
  edgeId: string;
  /** `Host` header value (host:port of the API URL in the Edge key). */
  host: string;
  /** Mode-private state (the poll mode's ETag cache). */
  state: any;
}

/** The protocol of one mode, used inside the worker threads. */
export interface ModeDriver {
  /** Prepares the agent's private state. */
  init(agent: ModeAgent): void;
  /** The exact bytes of the agent's next check-in. */
  request(agent: ModeAgent): string;
  /** Takes in an answered reply (2xx/304); returns the interval in seconds it asks for, if it says. */
  onReply(agent: ModeAgent, res: RawResponse): number | undefined;
  /** After a failed check-in (Portainer's agent forgets cached state on any non-200). */
  onFailure(agent: ModeAgent): void;
  /** A reply that came over the push channel: cached by its ETag like a polled one (push mode). */
  remember?(agent: ModeAgent, etag: string, checkin: number): void;
}

/** What a mode needs on the server before agents start (run in the main thread). */
export interface ModeSetup {
  /** Extra fields of `POST /api/endpoints` for this mode's environments. */
  createFields: Record<string, unknown>;
  /** Settings to make the server ask for `intervalS`, or undefined when per-environment fields do it. */
  settingsFor?(intervalS: number): Record<string, unknown>;
}

export interface ModeDefinition {
  name: string;
  /** One line for --help. */
  summary: string;
  setup: ModeSetup;
  driver(): ModeDriver;
  /** Agents open the push channel when a reply offers it (README "Push channel"). */
  push?: boolean;
}

/** Headers every Portainer agent request carries, with Go's canonical name casing. */
function identityHeaders(a: ModeAgent): HeaderPair[] {
  return [
    ['Host', a.host],
    ['User-Agent', 'Go-http-client/1.1'],
    ['Portainer-Agent', AGENT_VERSION],
    ['Portainer-Agent-Platform', '1'],
    ['X-Portaineragent-Edgeid', a.edgeId],
    ['X-Portaineragent-Timezone', TIME_ZONE],
    ['X-Portaineragent-Update-Id', '0'],
  ];
}

/** Like Portainer's agent: the last 8 replies by ETag, offered comma-joined in If-None-Match. */
const MAX_ETAGS = 8;

interface PollState {
  /** ETag → the interval that reply asked for; insertion order is recency (last = most recent). */
  etags: Map<string, number>;
  ifNoneMatch: string;
  /** Headers and request line, fixed for the agent's life. */
  headers: HeaderPair[];
  path: string;
}

/** Standard mode: `GET /api/endpoints/{id}/edge/status` with ETags (reference 1.6-1.9). */
const poll: ModeDefinition = {
  name: 'poll',
  summary: 'GET /api/endpoints/{id}/edge/status with the agent headers and If-None-Match (standard Edge agent)',
  setup: { createFields: {} },
  driver: () => ({
    init(a) {
      const st: PollState = { etags: new Map(), ifNoneMatch: '', headers: identityHeaders(a), path: `/api/endpoints/${a.endpointId}/edge/status` };
      a.state = st;
    },
    request(a) {
      const st = a.state as PollState;
      const headers = st.ifNoneMatch
        ? [...st.headers, ['If-None-Match', st.ifNoneMatch] as const, ['Accept-Encoding', 'gzip'] as const]
        : [...st.headers, ['Accept-Encoding', 'gzip'] as const];
      return serializeRequest('GET', st.path, headers);
    },
    onReply(a, res) {
      const st = a.state as PollState;
      if (res.status === 304) {
        const cached = res.etag === undefined ? undefined : st.etags.get(res.etag);
        if (cached === undefined) return undefined;
        st.etags.delete(res.etag!);
        st.etags.set(res.etag!, cached);
        st.ifNoneMatch = [...st.etags.keys()].join(',');
        return cached;
      }
      let checkin: number | undefined;
      try {
        const v = JSON.parse(res.body.toString('utf8')).checkin;
        if (typeof v === 'number' && v > 0) checkin = v;
      } catch { /* a reply without a JSON body asks for nothing */ }
      if (res.etag) rememberEtag(st, res.etag, checkin ?? 0);
      return checkin;
    },
    onFailure() {
      // The agent keeps its ETag cache across failures (poll.go only resets stack state).
    },
    remember(a, etag, checkin) {
      if (etag) rememberEtag(a.state as PollState, etag, checkin);
    },
  }),
};

/** Caches a reply's ETag as the most recent, at most MAX_ETAGS. */
function rememberEtag(st: PollState, etag: string, checkin: number): void {
  st.etags.delete(etag);
  st.etags.set(etag, checkin);
  while (st.etags.size > MAX_ETAGS) st.etags.delete(st.etags.keys().next().value!);
  st.ifNoneMatch = [...st.etags.keys()].join(',');
}

/** Async mode ping: `POST /api/endpoints/edge/async` with `{"endpointId":N}` (reference 2.1-2.3). */
const asyncPing: ModeDefinition = {
  name: 'async',
  summary: 'POST /api/endpoints/edge/async {"endpointId":N} pings with the agent headers (async Edge agent, no snapshot or command)',
  setup: {
    createFields: { EdgeAsync: true },
    settingsFor: (intervalS) => ({ Edge: { PingInterval: intervalS } }),
  },
  driver: () => ({
    init(a) {
      a.state = { headers: [...identityHeaders(a), ['Content-Type', 'application/json'], ['Accept-Encoding', 'gzip']], body: JSON.stringify({ endpointId: a.endpointId }) };
    },
    request(a) {
      return serializeRequest('POST', '/api/endpoints/edge/async', a.state.headers, a.state.body);
    },
    onReply(_a, res) {
      try {
        // Go durations: nanoseconds.
        const ns = JSON.parse(res.body.toString('utf8')).pingInterval;
        if (typeof ns === 'number' && ns > 0) return ns / 1e9;
      } catch { /* nothing asked */ }
      return undefined;
    },
    onFailure() {},
  }),
};

/**
 * Push mode: a standard agent that binds with a check-in, then, since the reply offers it
 * (`X-Capstan-Push`), holds the push channel open and polls only while it is down (the channel
 * itself is in push.ts).
 */
const push: ModeDefinition = {
  name: 'push',
  summary: 'standard agents that bind with one check-in, then hold the push WebSocket (GET /api/endpoints/{id}/edge/push,\n'
    + '                        subprotocol capstan-push.v1) and poll only while it is down (Capstan agent, EDGE_PUSH=1)',
  setup: { createFields: {} },
  driver: poll.driver,
  push: true,
};

export const MODES: Record<string, ModeDefinition> = { poll, async: asyncPing, push };

/** The mode by name; a clear error for unknown ones. */
export function modeByName(name: string): ModeDefinition {
  const m = MODES[name];
  if (!m) throw new Error(`unknown --mode ${JSON.stringify(name)}: use ${Object.keys(MODES).join(', ')}`);
  return m;
}
