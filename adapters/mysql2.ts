/**
 * `leasepool/adapters/mysql2`: the leasepool adapter for `mysql2` (MySQL and MariaDB), and the
 * drop-in for `mysql2/promise`: everything `mysql2/promise` exports (createConnection, format,
 * escape, Types, the types …) with `createPool` replaced, as named exports and as the default
 * export, so that changing the import is the whole migration. `createPoolCluster` is replaced too
 * (mysql2/promise's PoolCluster over leasepool pools, with `restoreNodeTimeout`).
 *
 * ```ts
 * import { createPool } from 'leasepool';
 * import { mysqlAdapter } from 'leasepool/adapters/mysql2';
 * const pool = createPool(mysqlAdapter({ host: '127.0.0.1', user: 'app', database: 'shop' }), { max: 10 });
 * ```
 */
export { mysqlAdapter, type MysqlAdapter, type MysqlAdapterOptions } from './mysql2/adapter';
export { mysqlDialect, validateBeginOptions as validateMysqlBegin } from './mysql2/dialect';
export type { MysqlConnectionConfig } from './mysql2/config';
export * from './mysql2/pool';
export { createPoolCluster, PoolCluster, PoolNamespace, type PoolClusterOptions, type PoolClusterSelector, type PoolClusterEvents } from './mysql2/pool-cluster';
import * as mysql2Promise from './mysql2/pool';
export default mysql2Promise;
