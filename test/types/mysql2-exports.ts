/**
 * Type-level checks (compiled by `npm run typecheck`, never run): `leasepool/adapters/mysql2` gives
 * every export of `mysql2/promise`, values and types, named and default, with `createPool` returning
 * the drop-in. Each `Same<…>` below fails to compile if an export is missing or typed differently.
 */
import type * as mysql2 from 'mysql2/promise';
import mysqlDefault, * as facade from '../../adapters/mysql2';

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Values = typeof mysql2;

/** Every value export of mysql2/promise is there… */
export const noneMissing: Same<Exclude<keyof Values, keyof typeof facade>, never> = true;
/** …with mysql2's own type, createPool and createPoolCluster (the drop-ins) aside. */
type Replaced = 'createPool' | 'createPoolCluster';
export const sameValues: Same<{ [K in Exclude<keyof Values, Replaced>]: (typeof facade)[K] }, { [K in Exclude<keyof Values, Replaced>]: Values[K] }> = true;
/** createPoolCluster returns the drop-in cluster, usable where mysql2's PoolCluster is expected. */
export const cluster: mysql2.PoolCluster = facade.createPoolCluster({ restoreNodeTimeout: 1_000 });
export const namespace: mysql2.PoolNamespace = cluster.of('REPLICA*', 'RR');
/** The default import is the same module. */
export const defaultIsModule: Same<typeof mysqlDefault.format, typeof mysql2.format> = true;
export const defaultCreatePool: Same<typeof mysqlDefault.createPool, typeof facade.createPool> = true;

/** createPool takes mysql2's options (a URL or PoolOptions) and returns something usable as mysql2's Pool. */
export const pool: mysql2.Pool = facade.createPool({ host: '127.0.0.1', connectionLimit: 1 });
export const fromUrl: mysql2.Pool = mysqlDefault.createPool('mysql://root@127.0.0.1/test');

/** The type exports code imports from mysql2/promise, under the same names. */
export type TypeExports = [
  Same<facade.RowDataPacket, mysql2.RowDataPacket>,
  Same<facade.ResultSetHeader, mysql2.ResultSetHeader>,
  Same<facade.FieldPacket, mysql2.FieldPacket>,
  Same<facade.OkPacket, mysql2.OkPacket>,
  Same<facade.QueryError, mysql2.QueryError>,
  Same<facade.QueryResult, mysql2.QueryResult>,
  Same<facade.QueryOptions, mysql2.QueryOptions>,
  Same<facade.ConnectionOptions, mysql2.ConnectionOptions>,
  Same<facade.Connection, mysql2.Connection>,
  Same<facade.PoolConnection, mysql2.PoolConnection>,
  Same<facade.PoolClusterOptions['restoreNodeTimeout'], mysql2.PoolClusterOptions['restoreNodeTimeout']>,
  Same<facade.PoolClusterOptions, mysql2.PoolClusterOptions>,
  Same<facade.PreparedStatementInfo, mysql2.PreparedStatementInfo>,
  Same<facade.ProcedureCallPacket, mysql2.ProcedureCallPacket>,
  Same<facade.TypeCast, mysql2.TypeCast>,
  Same<facade.SslOptions, mysql2.SslOptions>,
];
export const typeExports: TypeExports = [true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true];
/** The drop-in's own options accept every mysql2 pool option. */
export const options: facade.PoolOptions = { connectionLimit: 1, maxIdle: 1, idleTimeout: 1, queueLimit: 0 } satisfies mysql2.PoolOptions;
