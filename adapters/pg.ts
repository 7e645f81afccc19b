/**
 * `leasepool/adapters/pg`: the leasepool adapter for node-postgres (`pg` >= 8.21), the drop-in
 * `Pool` for `pg.Pool`, and everything else `pg` exports (see adapters/pg/exports.ts).
 *
 * ```ts
 * import { createPool } from 'leasepool';
 * import { pgAdapter } from 'leasepool/adapters/pg';
 * const pool = createPool(pgAdapter(process.env.DATABASE_URL!, { statementTimeoutMs: 30_000 }), { max: 10 });
 * ```
 */
export * from './pg/exports';
// Not enumerable (pg loads it on first read), so not part of `export *` at run time.
export { native } from './pg/exports';

// `import pg from 'leasepool/adapters/pg'`: everything above, as `pg`'s default export is `pg`
// itself (`pg.Pool`, `pg.Client`, `pg.types`, and as types `pg.QueryResult`, …).
import pgNamespace = require('./pg/namespace');
export default pgNamespace;
