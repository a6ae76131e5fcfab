/**
 * Capstan's state store: the {@link Store} contract, its LMDB (embedded, default) and MongoDB
 * adapters, and the schema migrations run at start.
 */
import * as path from 'node:path';
import { LmdbStore } from './lmdb-store';
import type { Store } from './types';

export type { Key, ScanRange, Store, WriteOp } from './types';
export { FENCE_KEY, MAX_KEY_BYTES, META_COLLECTION, SCHEMA_VERSION_KEY } from './types';
export { LmdbStore, type LmdbStoreOptions } from './lmdb-store';
/** Types only: the adapter (and the MongoDB driver) is loaded by {@link createStores} when asked for. */
export type { MongoStore, MongoStoreOptions } from './mongo-store';
export {
  MIGRATIONS, SCHEMA_VERSION, assertSchemaSupported, readSchemaVersion, runMigrations, type Migration,
} from './migrations';

/** Where the stores live; the fields mirror the process config (`CAPSTAN_DATA_DIR`, `MONGODB_URL`, `MONGODB_DATABASE`). */
export interface StoresConfig {
  /** Directory of the embedded stores; used when `mongodbUrl` is empty. */
  dataDir: string;
  /** MongoDB connection string; empty selects the embedded LMDB stores. */
  mongodbUrl: string;
  /** MongoDB database of the main store; the audit store uses `<name>_audit`. */
  mongodbDatabase: string;
}

/**
 * Builds the two stores, not yet opened: `main` (all state) and `audit` (the audit log), kept
 * apart so audit volume never competes with state writes and each can be backed up on its own.
 * LMDB: `<dataDir>/main.lmdb` and `<dataDir>/audit.lmdb` (directories). MongoDB: databases
 * `<mongodbDatabase>` and `<mongodbDatabase>_audit`.
 */
export function createStores(config: StoresConfig): { main: Store; audit: Store } {
  if (config.mongodbUrl) {
    // Loaded here, not at import: the driver costs a process that does not use it about 20 MB of
    // memory (bson's serialisation buffer, the driver's code).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { MongoStore } = require('./mongo-store') as typeof import('./mongo-store');
    return {
      main: new MongoStore({ url: config.mongodbUrl, database: config.mongodbDatabase }),
      audit: new MongoStore({ url: config.mongodbUrl, database: `${config.mongodbDatabase}_audit` }),
    };
  }
  return {
    main: new LmdbStore({ path: path.join(config.dataDir, 'main.lmdb') }),
    audit: new LmdbStore({ path: path.join(config.dataDir, 'audit.lmdb') }),
  };
}
