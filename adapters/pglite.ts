/**
 * `leasepool/adapters/pglite`: the leasepool adapter for PGlite (`@electric-sql/pglite` >= 0.5),
 * PostgreSQL in WASM, in process. See adapters/pglite/adapter.ts.
 */
export { pgliteAdapter } from './pglite/adapter';
export type { PgliteAdapterOptions, PgliteInstance } from './pglite/config';
export { PgliteConnection } from './pglite/connection';
