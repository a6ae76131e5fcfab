import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { EnvironmentCreate } from '../../../shared/contracts';
import { AppError, BadRequestError } from '../../../shared/errors';

/*
 * `POST /api/endpoints` as Portainer clients send it: multipart/form-data whose values are all
 * strings. They are converted to the typed EnvironmentCreate and validated with the same schema
 * as the JSON body.
 */

type Kind = 'string' | 'int' | 'bool' | 'ids';
const FIELDS: Record<keyof EnvironmentCreate, Kind> = {
  Name: 'string', EndpointCreationType: 'int', URL: 'string', PublicURL: 'string', GroupID: 'int',
  TagIds: 'ids', EdgeCheckinInterval: 'int', ContainerEngine: 'string', EdgeAsync: 'bool',
  EdgePingInterval: 'int', EdgeSnapshotInterval: 'int', EdgeCommandInterval: 'int',
};

/** Fields Portainer clients send that Capstan does not use yet: accepted and ignored. */
const IGNORED_FIELDS = new Set([
  'TLS', 'TLSSkipVerify', 'TLSSkipClientVerify', 'Gpus', 'AzureApplicationID', 'AzureTenantID',
  'AzureAuthenticationKey', 'EdgeTunnelServerAddress',
]);
/** Uploaded TLS files: drained and ignored for now (TLS to Docker API endpoints comes later). */
const IGNORED_FILES = new Set(['TLSCACertFile', 'TLSCertFile', 'TLSKeyFile']);

/** The form as it appears in the OpenAPI document. */
export const EnvironmentCreateForm = Type.Object({
  Name: Type.String({ minLength: 1, maxLength: 200 }),
  EndpointCreationType: Type.String({ description: '1 Docker API, 2 Agent, 3 Azure, 4 Edge agent, 5 local Kubernetes', pattern: '^[1-5]$' }),
  URL: Type.Optional(Type.String()),
  PublicURL: Type.Optional(Type.String()),
  GroupID: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  TagIds: Type.Optional(Type.String({ description: 'JSON array of tag ids, e.g. [1,2]' })),
  EdgeCheckinInterval: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  ContainerEngine: Type.Optional(Type.String({ description: 'docker or podman' })),
  EdgeAsync: Type.Optional(Type.String({ description: 'true or false' })),
  EdgePingInterval: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'async ping timer, seconds (0: the settings\')' })),
  EdgeSnapshotInterval: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'async snapshot timer, seconds' })),
  EdgeCommandInterval: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'async command timer, seconds' })),
  TLSCACertFile: Type.Optional(Type.String({ format: 'binary', description: 'accepted, not used yet' })),
  TLSCertFile: Type.Optional(Type.String({ format: 'binary', description: 'accepted, not used yet' })),
  TLSKeyFile: Type.Optional(Type.String({ format: 'binary', description: 'accepted, not used yet' })),
});

const checker = TypeCompiler.Compile(EnvironmentCreate);

/** Reads a stream to its end, keeping nothing. */
async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  const it = stream[Symbol.asyncIterator]();
  while (!(await it.next()).done) { /* discard */ }
}

function convert(kind: Kind, raw: unknown): unknown {
  if (typeof raw !== 'string') return raw; // a part sent as application/json arrives parsed
  const v = raw.trim();
  switch (kind) {
    case 'string': return raw;
    case 'int': return /^-?[0-9]{1,16}$/.test(v) ? Number(v) : raw;
    case 'bool': return v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : raw;
    case 'ids': {
      if (v === '') return [];
      try {
        return JSON.parse(v.startsWith('[') ? v : `[${v}]`);
      } catch {
        return raw;
      }
    }
  }
}

/**
 * Reads the whole form: known fields converted, Portainer's unused fields and TLS files ignored,
 * anything else a 400. Malformed multipart is a 400, oversized a 413; never a 500.
 */
export async function readEnvironmentForm(request: FastifyRequest, bodyLimit: number): Promise<EnvironmentCreate> {
  const length = Number(request.headers['content-length']);
  if (Number.isFinite(length) && length > bodyLimit) {
    throw new AppError('Request body is too large', 413, 'PAYLOAD_TOO_LARGE', `The limit is ${bodyLimit} bytes`);
  }
  const out: Record<string, unknown> = {};
  const unknown: string[] = [];
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        // Always drain, or the parser stalls waiting for this stream to be consumed.
        await drain(part.file);
        if (!IGNORED_FILES.has(part.fieldname)) unknown.push(part.fieldname);
        continue;
      }
      const name = part.fieldname;
      if (part.fieldnameTruncated || part.valueTruncated) throw new BadRequestError('Invalid request', `Form field "${name.slice(0, 100)}" is too long`);
      if (IGNORED_FIELDS.has(name)) continue;
      if (!Object.prototype.hasOwnProperty.call(FIELDS, name)) {
        unknown.push(name);
        continue;
      }
      if (Object.prototype.hasOwnProperty.call(out, name)) throw new BadRequestError('Invalid request', `Form field "${name}" is repeated`);
      const kind = FIELDS[name as keyof EnvironmentCreate];
      // Portainer's UI sends empty strings for numeric fields it leaves unset.
      if (kind !== 'string' && typeof part.value === 'string' && part.value.trim() === '') continue;
      out[name] = convert(kind, part.value);
    }
  } catch (err) {
    const status = (err as { statusCode?: number; code?: unknown }).statusCode ?? (err as { code?: unknown }).code;
    if (typeof status === 'number' && status >= 400 && status < 500) throw err;
    throw new BadRequestError('Invalid multipart body', (err as Error)?.message ?? 'unreadable form', { cause: err });
  }
  if (unknown.length) throw new BadRequestError('Invalid request', unknown.slice(0, 20).map((f) => ({ path: `/${f.slice(0, 100)}`, message: 'Unknown form field' })));
  if (!checker.Check(out)) {
    const problems = [...checker.Errors(out)].slice(0, 10).map((e) => ({ path: e.path || '/', message: e.message }));
    throw new BadRequestError('Invalid request', problems);
  }
  return out as EnvironmentCreate;
}
