import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Context, Service, ServiceBroker } from 'moleculer';
import WebSocket, { WebSocketServer } from 'ws';
import {
  call, CommandsQueued, PUSH_ALIVE_MS, PUSH_IDS_PER_CALL, PUSH_PING_MS, PUSH_SUBPROTOCOL, PushEvents, ReplyChanged,
  type ActionMap, type PushOpenResult, type ReplyChange,
} from '../../../shared/contracts';
import { addUpgradeRoute, upgradeError } from '../../upgrade';

/** `GET /api/endpoints/{id}/edge/push` (a query string is tolerated and ignored). */
export const PUSH_PATH = /^\/api\/endpoints\/([0-9]{1,10})\/edge\/push(?:\?.*)?$/;
/** Agents send nothing on the channel; anything larger than this closes it (1009). */
const MAX_INBOUND_BYTES = 1024;

const COMMANDS_FRAME = Buffer.from('{"type":"commands"}');
const TIMERS_FRAME = Buffer.from('{"type":"timers"}');
/** A status frame around the reply's exact JSON (its trailing newline dropped). */
const statusFrame = (etag: string, body: string): Buffer => Buffer.from(`{"type":"status","etag":${JSON.stringify(etag)},"body":${body.trimEnd()}}`);

/** Close codes the server uses (the agent falls back to polling on any close). */
export const PushClose = { replaced: 4000, revoked: 4003, stopping: 1001 } as const;

/**
 * One push connection. Everything it needs lives on the socket (two small fields); listeners are
 * shared functions, so a connection costs the TLS socket and the WebSocket, nothing per closure.
 */
class PushSocket extends WebSocket {
  envId = 0;
  /** Pinged and no pong yet. */
  waiting = false;
}

/** An upgrade waiting for polling's admission: changes for it are kept and sent right after the first message. */
interface PendingOpen {
  frames: Buffer[];
}

type PushAction = 'polling.pushOpen' | 'polling.pushAlive' | 'polling.pushClosed';

function header(v: string | string[] | undefined, max: number): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined ? undefined : s.slice(0, max);
}

function onPong(this: WebSocket): void {
  (this as PushSocket).waiting = false;
}
const ignore = () => undefined;

/** Timing knobs; tests shorten them. */
export interface PushHubOptions {
  pingMs?: number;
  aliveMs?: number;
}

/**
 * The gateway's side of the push channel: the upgrade (admitted by polling exactly like a
 * check-in), at most one socket per environment (a new one from the same agent replaces the old),
 * the changes polling and commands broadcast turned into frames, pings that drop dead sockets,
 * and the periodic report of live connections that gives pushed agents their heartbeats.
 *
 * Polling calls stick to the replica that answered last, so one replica tracks this gateway's
 * connections and only it broadcasts their changes; if it goes away the next report lands on
 * another replica, which takes the connections over and re-sends their current replies.
 */
export class PushHub {
  private readonly conns = new Map<number, PushSocket>();
  private readonly pending = new Map<number, PendingOpen>();
  private closedIds: number[] = [];
  private readonly wss = new WebSocketServer({
    noServer: true, clientTracking: false, perMessageDeflate: false, maxPayload: MAX_INBOUND_BYTES, skipUTF8Validation: true,
    WebSocket: PushSocket,
    handleProtocols: (protocols) => (protocols.has(PUSH_SUBPROTOCOL) ? PUSH_SUBPROTOCOL : false),
  });
  private readonly timers: NodeJS.Timeout[] = [];
  private reporting = false;
  private pollingNode: string | undefined;
  private stopped = false;
  private readonly onClose: (this: WebSocket) => void;

  constructor(private readonly broker: ServiceBroker, private readonly log: FastifyInstance['log'], opts: PushHubOptions = {}) {
    const dropped = (ws: PushSocket) => this.dropped(ws);
    this.onClose = function (this: WebSocket) {
      dropped(this as PushSocket);
    };
    this.timers.push(setInterval(() => this.ping(), opts.pingMs ?? PUSH_PING_MS), setInterval(() => void this.report(), opts.aliveMs ?? PUSH_ALIVE_MS));
    for (const t of this.timers) t.unref();
  }

  /** Live push connections. */
  get size(): number {
    return this.conns.size;
  }

  /** The `upgrade` of `GET /api/endpoints/{id}/edge/push`. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, id: number): void {
    if (!(id >= 1 && id <= 2147483647)) return upgradeError(socket, 400, 'Invalid environment identifier route variable', { id });
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (!offered.includes(PUSH_SUBPROTOCOL)) return upgradeError(socket, 400, `expected WebSocket subprotocol ${PUSH_SUBPROTOCOL}`);
    if (String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return upgradeError(socket, 400, 'expected a WebSocket upgrade');
    const pend: PendingOpen = { frames: [] };
    this.pending.set(id, pend);
    const h = req.headers;
    this.polling('polling.pushOpen', {
      id, edgeId: header(h['x-portaineragent-edgeid'], 1024), agentVersion: header(h['portainer-agent'], 128), platform: header(h['portainer-agent-platform'], 16),
    }).then((r) => {
      if (r.status !== 200) return upgradeError(socket, r.status, r.error?.message ?? 'Refused', r.error?.details);
      if (this.stopped) return upgradeError(socket, 503, 'The gateway is stopping; retry shortly');
      let accepted = false;
      // Synchronous (no verifyClient): nothing can arrive between admission and registration.
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        accepted = true;
        this.accept(ws as PushSocket, id, r, pend);
      });
      if (!accepted) this.closedIds.push(id); // the agent hung up while it was being admitted
    }, (err: { code?: unknown; message?: string; data?: unknown }) => {
      const status = typeof err?.code === 'number' && err.code >= 400 && err.code < 600 ? err.code : 503;
      upgradeError(socket, status, status >= 500 ? 'Push is unavailable right now; retry shortly' : err.message ?? 'Refused', status >= 500 ? undefined : err.data,
        status === 503 ? { 'retry-after': '5' } : {});
    }).finally(() => {
      if (this.pending.get(id) === pend) this.pending.delete(id);
    });
  }

  /** `edgeReply.changed`: frames for the connections this gateway holds. */
  onChanged(items: ReplyChange[]): void {
    for (const it of items) {
      const ws = this.conns.get(it.id);
      if (it.kind === 'revoked') {
        ws?.close(PushClose.revoked, 'agent no longer admitted');
        continue;
      }
      const pend = this.pending.get(it.id);
      if (!ws && !pend) continue;
      const frame = it.kind === 'timers' ? TIMERS_FRAME : it.etag && it.body ? statusFrame(it.etag, it.body) : undefined;
      if (!frame) continue;
      if (ws) this.send(ws, frame);
      // An agent reconnecting while its old socket is still here gets it too.
      pend?.frames.push(frame);
    }
  }

  /** `commands.queued`: a nudge to each async agent connected here. */
  onCommandsQueued(ids: number[]): void {
    for (const id of ids) {
      const ws = this.conns.get(id);
      if (ws) this.send(ws, COMMANDS_FRAME);
      this.pending.get(id)?.frames.push(COMMANDS_FRAME);
    }
  }

  /** Closes every connection (agents fall back to polling) and stops the timers. */
  async close(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    const ids = [...this.conns.keys()];
    for (const ws of this.conns.values()) {
      ws.close(PushClose.stopping, 'server stopping');
      // A peer that does not answer the close handshake must not hold the server open.
      setTimeout(() => ws.terminate(), 1000).unref();
    }
    this.conns.clear();
    await Promise.all(chunks(ids).map((c) => this.polling('polling.pushClosed', { ids: c }).catch(ignore)));
  }

  private accept(ws: PushSocket, id: number, r: PushOpenResult, pend: PendingOpen): void {
    ws.envId = id;
    ws.on('pong', onPong);
    ws.on('close', this.onClose);
    ws.on('error', ignore);
    const old = this.conns.get(id);
    this.conns.set(id, ws);
    if (old) old.close(PushClose.replaced, 'replaced by a newer connection');
    // First the state as of admission (standard: the reply; async: fetch commands now), then anything newer.
    this.send(ws, r.async ? COMMANDS_FRAME : statusFrame(r.etag ?? '', r.body ?? ''));
    for (const f of pend.frames) this.send(ws, f);
  }

  private dropped(ws: PushSocket): void {
    if (this.conns.get(ws.envId) !== ws) return; // replaced, or already dropped
    this.conns.delete(ws.envId);
    this.closedIds.push(ws.envId);
  }

  private send(ws: PushSocket, frame: Buffer): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(frame, { binary: false });
  }

  private ping(): void {
    for (const ws of this.conns.values()) {
      if (ws.waiting) {
        ws.terminate();
        continue;
      }
      ws.waiting = true;
      ws.ping();
    }
  }

  /** Reports live and closed connections to polling; closes the ones it no longer admits. */
  private async report(): Promise<void> {
    if (this.reporting || this.stopped) return;
    this.reporting = true;
    try {
      const closed = this.closedIds.filter((id) => !this.conns.has(id));
      this.closedIds = [];
      for (const ids of chunks(closed)) await this.polling('polling.pushClosed', { ids });
      for (const ids of chunks([...this.conns.keys()])) {
        const { unknown } = await this.polling('polling.pushAlive', { ids });
        for (const id of unknown) this.conns.get(id)?.close(PushClose.revoked, 'agent no longer admitted');
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'push: live connections not reported to polling; retrying');
    } finally {
      this.reporting = false;
    }
  }

  private async polling<K extends PushAction>(action: K, params: ActionMap[K]['params']): Promise<ActionMap[K]['result']> {
    const node = this.pollingNode;
    try {
      const r = await call(this.broker, action, params, node ? { nodeID: node } : undefined);
      this.pollingNode = r.node;
      return r;
    } catch (err) {
      if (!node) throw err;
      // The replica went away (or failed): any other takes over.
      this.pollingNode = undefined;
      return this.polling(action, params);
    }
  }
}

function chunks(ids: number[]): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < ids.length; i += PUSH_IDS_PER_CALL) out.push(ids.slice(i, i + PUSH_IDS_PER_CALL));
  return out;
}

/**
 * Starts the push channel on the gateway: the upgrade route, and a `gateway` Moleculer service
 * on this process's broker that receives the changes addressed to every gateway.
 */
export function startPush(fastify: FastifyInstance, opts: PushHubOptions = {}): PushHub {
  const hub = new PushHub(fastify.broker, fastify.log, opts);
  addUpgradeRoute(fastify.server, PUSH_PATH, (req, socket, head, m) => hub.upgrade(req, socket, head, Number(m[1])));
  const service: Service = fastify.broker.createService({
    name: 'gateway',
    events: {
      [PushEvents.replyChanged]: { params: ReplyChanged, handler: (ctx: Context<ReplyChanged>) => hub.onChanged(ctx.params.items) },
      [PushEvents.commandsQueued]: { params: CommandsQueued, handler: (ctx: Context<CommandsQueued>) => hub.onCommandsQueued(ctx.params.ids) },
    },
  });
  fastify.addHook('preClose', async () => {
    await hub.close();
    await fastify.broker.destroyService(service).catch(ignore);
  });
  return hub;
}
