import { StoreVersionError } from '../errors';
import { META_COLLECTION, SCHEMA_VERSION_KEY, type Store, type WriteOp } from './types';

/** The schema version this build writes. Bump it together with a new entry in {@link MIGRATIONS}. */
export const SCHEMA_VERSION = 2;

/** Environments per commit of {@link moveLastCheckIns}: commits stay small on either engine. */
const MIGRATION_CHUNK = 500;

/**
 * One step of the schema, from `version - 1` to `version`.
 *
 * `up` may commit on its own (with the given fence) and/or return its last ops: returned ops are
 * committed together with the new schema version, so a one-commit migration is atomic. Anything
 * it commits itself happens before the version is recorded, so after a crash it runs again:
 * such writes must be idempotent.
 */
export interface Migration {
  version: number;
  description: string;
  up(store: Store, fence: number): Promise<void | WriteOp[]>;
}

/** Capstan's migrations, in version order. */
export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'Initial schema: collections are created on first write, so only the version is recorded',
    up: async () => [],
  },
  {
    version: 2,
    description: 'Last check-ins move out of the environment documents into `checkins` (id → { at }, unix seconds)',
    up: moveLastCheckIns,
  },
];

/**
 * Version 2: each environment's `LastCheckInDate` becomes a `checkins` document (when it is set)
 * and leaves the environment document, both in one commit, so an interrupted run resumes with
 * the environments it had not reached yet. Names are literal: this is the schema of version 2.
 */
async function moveLastCheckIns(store: Store, fence: number): Promise<WriteOp[]> {
  let ops: WriteOp[] = [];
  for await (const { key, value } of store.scan('environments')) {
    if (!Object.hasOwn(value, 'LastCheckInDate')) continue;
    const { LastCheckInDate: at, ...rest } = value;
    if (typeof at === 'number' && at > 0) ops.push({ op: 'put', collection: 'checkins', key, value: { at } });
    ops.push({ op: 'put', collection: 'environments', key, value: rest });
    if (ops.length >= 2 * MIGRATION_CHUNK) {
      await store.commit(fence, ops);
      ops = [];
    }
  }
  return ops;
}

/** The schema version recorded in the store; 0 for a store never migrated (a fresh one). */
export async function readSchemaVersion(store: Store): Promise<number> {
  const doc = await store.get(META_COLLECTION, SCHEMA_VERSION_KEY);
  const value = doc?.value;
  if (doc === undefined) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new StoreVersionError(`The store at ${where(store)} records an unreadable schema version (${JSON.stringify(value)}).`, { stored: value });
  }
  return value;
}

/**
 * Refuses a store written by a newer Capstan, whose data this build could misread or damage.
 * Returns the stored version.
 */
export async function assertSchemaSupported(store: Store, current = SCHEMA_VERSION): Promise<number> {
  const stored = await readSchemaVersion(store);
  if (stored > current) {
    throw new StoreVersionError(
      `The store at ${where(store)} was written by schema version ${stored}, newer than this Capstan build supports (${current}). ` +
        'Upgrade Capstan or restore a backup made by this version.',
      { stored, supported: current },
    );
  }
  return stored;
}

/**
 * Brings the store to `current`: runs, in version order, each migration above the stored version,
 * recording every step's version in `_meta.schemaVersion`. Running it again is a no-op.
 * Throws StoreVersionError for a newer store and FencedError when `fence` is no longer current.
 */
export async function runMigrations(
  store: Store,
  fence: number,
  migrations: Migration[] = MIGRATIONS,
  current = SCHEMA_VERSION,
): Promise<{ from: number; to: number }> {
  const from = await assertSchemaSupported(store, current);
  const ordered = [...migrations].sort((a, b) => a.version - b.version);
  ordered.forEach((m, i) => {
    if (!Number.isSafeInteger(m.version) || m.version < 1) throw new Error(`Migration "${m.description}" has an invalid version ${m.version}`);
    if (i > 0 && ordered[i - 1].version === m.version) throw new Error(`Two migrations have version ${m.version}`);
  });
  let at = from;
  for (const m of ordered) {
    if (m.version <= at || m.version > current) continue;
    if (m.version !== at + 1) throw new Error(`No migration from schema version ${at} to ${at + 1}`);
    const ops = (await m.up(store, fence)) ?? [];
    const record: WriteOp = { op: 'put', collection: META_COLLECTION, key: SCHEMA_VERSION_KEY, value: { value: m.version } };
    await store.commit(fence, [...ops, record]);
    at = m.version;
  }
  if (at !== current) throw new Error(`No migration from schema version ${at} to ${current}`);
  return { from, to: at };
}

function where(store: Store): string {
  const location = (store as Partial<{ location: unknown }>).location;
  return typeof location === 'string' ? location : `${store.kind} store`;
}
