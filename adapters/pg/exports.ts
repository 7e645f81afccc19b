/**
 * The public names of `leasepool/adapters/pg`: the adapter, the drop-in `Pool`, and everything
 * else `pg` exports (the same objects, types too), so that `import pg from 'leasepool/adapters/pg'`
 * (or `require`) can stand in for `import pg from 'pg'`, with `Pool` replaced.
 */
import * as pgModule from 'pg';

export { pgAdapter, type PgQuery } from './adapter';
export type { PgAdapterOptions } from './config';
export { Pool } from './pool';
export type { PgPoolConfig, PgPoolEvents, PgPoolLeasepoolOptions, PgPoolListener, PgPoolOptions } from './pool';

// pg's own values, as `pg` exports them (the same objects: `Client === require('pg').Client`).
export { Client, Connection, DatabaseError, Query, Result, TypeOverrides, defaults, escapeIdentifier, escapeLiteral, types } from 'pg';
// pg's types (`QueryResult`, `PoolClient`, `ClientConfig`, …); `Pool` is the drop-in above.
export type * from 'pg';

/** pg's `utils` (`prepareValue`, …), which `pg` exports untyped. */
export const utils: unknown = (pgModule as unknown as { utils?: unknown }).utils;
/** pg's internal `_pools` list, exported by `pg` too. */
export const _pools: unknown = (pgModule as unknown as { _pools?: unknown })._pools;
/** pg's native bindings (`pg.native`): loaded on first read, as `pg` does; `null` when pg-native is not installed. */
export declare const native: typeof pgModule.native;
Object.defineProperty(module.exports, 'native', {
  configurable: true,
  enumerable: false,
  // pg's module object itself: a namespace import may hold only a copy of its enumerable keys.
  get: (): typeof pgModule.native => (require('pg') as typeof pgModule).native,
});
