import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import zlib from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AsyncReply, CapstanAsyncExtension, call, EdgeStatus, Environment, IdParams, PUSH_HEADER, PUSH_SUBPROTOCOL, pushPath } from '../../../shared/contracts';
import { AppError, BadRequestError } from '../../../shared/errors';
import { MAX_PACKED_SNAPSHOT_CHARS } from '../../../shared/snapshot';
import { errorResponses } from '../../schemas';
import { CheckinBatcher } from './batcher';
import { startPush } from './push';

const tags = ['edge'];

/** One header value (Node lower-cases names; a repeated header counts by its first value). */
function header(v: string | string[] | undefined, max: number): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined ? undefined : s.slice(0, max);
}

/** Largest async request body, decompressed (a full snapshot of a big host). */
const ASYNC_BODY_LIMIT = 64 * 1024 * 1024;

/** `POST /api/endpoints/edge/async` body (reference 2.2, plus Capstan's `capstan`); other fields are ignored. */
const AsyncRequestBody = Type.Object({
  endpointId: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647 })),
  commandTimestamp: Type.Optional(Type.String({ maxLength: 64 })),
  // Snapshot contents are checked by hand: the validator strips properties a schema does not name.
  snapshot: Type.Optional(Type.Object({
    docker: Type.Optional(Type.Unknown({ description: 'A full DockerSnapshot (reference 5.1)' })),
    dockerPatch: Type.Optional(Type.Unknown({ description: 'RFC 6902 operations from the previous snapshot' })),
    dockerHash: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff })),
  })),
  capstan: Type.Optional(CapstanAsyncExtension),
  metaFields: Type.Optional(Type.Unknown()),
}, { additionalProperties: true });

/** A snapshot part as it travels on to the snapshots service: gzip + base64, size-checked. */
function packed(value: unknown): string {
  const s = zlib.gzipSync(JSON.stringify(value)).toString('base64');
  if (s.length > MAX_PACKED_SNAPSHOT_CHARS) throw new AppError('The snapshot is too large to store', 413, 'SNAPSHOT_TOO_LARGE', { packedChars: s.length, limit: MAX_PACKED_SNAPSHOT_CHARS });
  return s;
}

/**
 * Async agents gzip requests that carry a snapshot (`Content-Encoding: gzip`): the body is read
 * through a gunzip stream, so the body limit counts decompressed bytes.
 */
async function gunzipRequest(request: FastifyRequest, _reply: FastifyReply, payload: NodeJS.ReadableStream & { receivedEncodedLength?: number }) {
  const encoding = String(request.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding === 'identity' || encoding === '') return payload;
  if (encoding !== 'gzip') throw new AppError('Unsupported Content-Encoding', 415, 'UNSUPPORTED_ENCODING', { 'content-encoding': encoding, supported: ['gzip', 'identity'] });
  const gunzip = zlib.createGunzip() as zlib.Gunzip & { receivedEncodedLength: number };
  gunzip.receivedEncodedLength = 0;
  payload.on('data', (c: Buffer) => (gunzip.receivedEncodedLength += c.length));
  payload.on('error', (err: Error) => gunzip.destroy(err));
  gunzip.on('error', () => undefined);
  payload.pipe(gunzip);
  return gunzip;
}

const NotModified = Type.Null({ description: 'Not modified: the reply has the ETag the agent sent' });

/**
 * Edge agent routes. The check-in is public (agents have no user credentials: the Edge ID check
 * in `polling` is their authentication) and kept cheap: no body, no auth call, one call to polling
 * (batched with others when polling runs elsewhere), whose answer (status, ETag, exact JSON bytes)
 * is sent as is.
 */
const edgeRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { broker } = fastify;
  // Capstan agents learn of the push channel from this header on their replies; Portainer agents ignore it.
  const push = fastify.config.push;
  if (push) startPush(fastify);
  // Polling in another process: check-ins travel in batches (see CheckinBatcher). In this process
  // (the embedded default, or polling beside the gateway) a call is a function call; waiting for
  // company would only add delay.
  const { checkinBatchMs } = fastify.config;
  const batcher = checkinBatchMs > 0 && !broker.getLocalService('polling') ? new CheckinBatcher(broker, { windowMs: checkinBatchMs }) : undefined;

  fastify.get('/endpoints/:id/edge/status', {
    config: { public: true },
    // Thousands per second: no request/response log lines, only warnings and errors.
    logLevel: 'warn',
    schema: {
      tags,
      summary: 'Edge agent check-in (X-PortainerAgent-EdgeID, Portainer-Agent, Portainer-Agent-Platform, If-None-Match); the first one binds the Edge ID',
      params: IdParams,
      response: { 200: EdgeStatus, 304: NotModified, ...errorResponses([403, 404], { authenticated: false }) },
    },
  }, async (request, reply) => {
    const h = request.headers;
    const params = {
      id: request.params.id,
      edgeId: header(h['x-portaineragent-edgeid'], 1024),
      agentVersion: header(h['portainer-agent'], 128),
      platform: header(h['portainer-agent-platform'], 16),
      ifNoneMatch: header(h['if-none-match'], 1024),
    };
    const r = await (batcher ? batcher.checkin(params) : call(broker, 'polling.checkin', params));
    // Untyped: the body is already serialised (the ETag covers those exact bytes).
    const raw = reply as FastifyReply;
    if (r.status === 200 || r.status === 304) {
      if (push) raw.header(PUSH_HEADER, pushPath(request.params.id));
      // An HTTP/1.1 connection stays open unless a side says otherwise: `Connection: keep-alive`
      // and Node's `Keep-Alive: timeout=72` (a hint Go's client, in Portainer's agent, ignores)
      // are 48 bytes of every reply. Left off only where the connection stays open anyway.
      if (request.raw.httpVersion === '1.1' && reply.raw.shouldKeepAlive) reply.raw.removeHeader('connection');
    }
    if (r.status === 200) return raw.header('etag', r.etag).type('application/json').send(r.body);
    if (r.status === 304) return raw.code(304).header('etag', r.etag).send();
    return raw.code(r.status).send(r.error);
  });

  fastify.post('/endpoints/edge/async', {
    config: { public: true },
    // Thousands per second: no request/response log lines, only warnings and errors.
    logLevel: 'warn',
    // Snapshots of big hosts: the limit applies to the decompressed body.
    bodyLimit: ASYNC_BODY_LIMIT,
    preParsing: gunzipRequest,
    schema: {
      tags,
      summary: 'Edge agent async exchange (reference section 2): ping, snapshot (full or JSON patch, gzip), command acknowledgements and new commands',
      body: AsyncRequestBody,
      response: { 200: AsyncReply, ...errorResponses([403, 404, 413, 415], { authenticated: false }) },
    },
  }, async (request, reply) => {
    const b = request.body;
    const h = request.headers;
    if (!b.endpointId) {
      throw new BadRequestError('endpointId is required: start the agent with its environment\'s Edge key (global keys are not supported)', { endpointId: b.endpointId ?? null });
    }
    const snapshot = b.snapshot ?? {};
    const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
    if (snapshot.docker !== undefined && !(isObject(snapshot.docker) && typeof snapshot.docker.Time === 'number' && isObject(snapshot.docker.DockerSnapshotRaw))) {
      throw new BadRequestError('snapshot.docker must be a Docker snapshot: an object with a numeric Time and a DockerSnapshotRaw object', { snapshot: 'docker' });
    }
    if (snapshot.dockerPatch !== undefined && (!Array.isArray(snapshot.dockerPatch) || snapshot.dockerHash === undefined)) {
      throw new BadRequestError('snapshot.dockerPatch must be an array of RFC 6902 operations, sent with dockerHash', { snapshot: 'dockerPatch' });
    }
    const r = await call(broker, 'polling.asyncExchange', {
      endpointId: b.endpointId,
      edgeId: header(h['x-portaineragent-edgeid'], 1024),
      agentVersion: header(h['portainer-agent'], 128),
      platform: header(h['portainer-agent-platform'], 16),
      ...(b.commandTimestamp !== undefined ? { commandTimestamp: b.commandTimestamp } : {}),
      ...(snapshot.docker ? { snapshotFull: packed(snapshot.docker) } : {}),
      ...(!snapshot.docker && snapshot.dockerPatch ? { snapshotPatch: packed(snapshot.dockerPatch), snapshotHash: snapshot.dockerHash } : {}),
      ...(b.capstan ? { capstan: b.capstan } : {}),
    });
    if (r.status !== 200) return (reply as FastifyReply).code(r.status).send(r.error);
    if (push) reply.header(PUSH_HEADER, pushPath(b.endpointId));
    return r.body;
  });

  // The push channel is a WebSocket upgrade (taken from the server's `upgrade` event, see push.ts);
  // this route documents it and answers a plain GET.
  fastify.get('/endpoints/:id/edge/push', {
    config: { public: true },
    schema: {
      tags,
      summary: `Capstan agents' push channel: a WebSocket upgrade (subprotocol ${PUSH_SUBPROTOCOL}) with the check-in headers; the server pushes poll replies and command nudges (README "Push channel")`,
      params: IdParams,
      response: errorResponses([404, 426], { authenticated: false }),
    },
  }, async (_request, reply) => {
    if (!push) throw new AppError('The push channel is disabled on this server (CAPSTAN_PUSH=0)', 404, 'PUSH_DISABLED');
    reply.header('upgrade', 'websocket');
    throw new AppError('Upgrade Required: open a WebSocket', 426, 'UPGRADE_REQUIRED', { subprotocol: PUSH_SUBPROTOCOL });
  });

  fastify.get('/endpoints/:id/status', {
    config: { public: true },
    schema: {
      tags,
      summary: 'Legacy Edge agent check-in path: 308 to /api/endpoints/{id}/edge/status',
      deprecated: true,
      params: IdParams,
      response: { 308: Type.Null({ description: 'Permanent redirect' }), ...errorResponses([], { authenticated: false }) },
    },
  }, async (request, reply) => {
    const q = request.url.indexOf('?');
    return reply.redirect(`/api/endpoints/${request.params.id}/edge/status${q >= 0 ? request.url.slice(q) : ''}`, 308);
  });

  fastify.delete('/endpoints/:id/association', {
    config: { admin: true },
    schema: {
      tags,
      summary: 'Forget the Edge agent bound to an environment (its Edge ID and snapshots) so another agent can check in',
      params: IdParams,
      response: { 200: Environment, ...errorResponses([404]) },
    },
  }, async (request) => call(broker, 'state.clearAssociation', { id: request.params.id }));
};

export default edgeRoutes;
