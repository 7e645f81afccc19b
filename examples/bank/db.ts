/**
 * The demo's database: the pool (PGlite, pg or mysql2 adapter), the few SQL differences between
 * PostgreSQL and MySQL, the bank table, and the admin connection that kills a worker's backend.
 */
import type { Client } from 'pg';
import type { Connection } from 'mysql2/promise';
import { createPool, type IsolationLevel, type Pool, type PoolOptions } from '../../src/index';
import { pgliteAdapter, type PgliteConnection } from '../../adapters/pglite';
import { pgAdapter } from '../../adapters/pg';
import { mysqlAdapter } from '../../adapters/mysql2';
import type { BankArgs, DbKind } from './args';

export type Row = Record<string, unknown>;
export interface QueryResult {
  readonly rows: Row[];
  /** Rows changed by INSERT/UPDATE/DELETE. */
  readonly affected: number;
}

/** The id of the suspense account: no transfer touches it; a leaked lease books an uncommitted deposit there. */
export const SUSPENSE_ACCOUNT = 0;

/** Everything the workload needs from one database. `C` is the driver's connection type. */
export interface BankDb<C extends object = object> {
  readonly kind: DbKind;
  /** What to call it in output: `pglite (in-memory)`, `pg 127.0.0.1:5432/test` (never a password). */
  readonly label: string;
  readonly pool: Pool<C>;
  /** Isolation of the transfers: serializable on PostgreSQL; MySQL keeps its default and relies on row locks. */
  readonly isolation: IsolationLevel | undefined;
  /** Run one statement written with `$1, $2 …` placeholders, numbered in order of appearance. */
  query(conn: C, sql: string, params?: readonly unknown[]): Promise<QueryResult>;
  /** A statement that sleeps `$1` seconds on the server; undefined on PGlite (it would freeze the process). */
  readonly sleepSql: string | undefined;
  /** Ask for the current connection's server-side id; undefined where there is no such thing (PGlite). */
  readonly backendIdSql: string | undefined;
  /** Kill a backend from the separate admin connection (pg_terminate_backend / KILL). */
  killBackend(id: number): Promise<void>;
  /** Close the pools (workers' and admin). */
  close(timeoutMs: number): Promise<void>;
}

/**
 * Forget the driver's connection type: the workload only hands connections back to `query`, which
 * knows it. (A `BankDb<C>` is used with the connections of its own pool only.)
 */
function erase<C extends object>(db: BankDb<C>): BankDb {
  return db as unknown as BankDb;
}

/**
 * Create the pool (no connection yet: call {@link probe}). `options` are the pool options; the
 * admin pool (pg/mysql, for kills) shares the connect settings but has no metrics.
 */
export function openDb(args: BankArgs, options: PoolOptions): BankDb {
  const admin: PoolOptions = {
    name: 'bank_admin',
    max: 1,
    connectTimeoutMs: options.connectTimeoutMs,
    acquireTimeoutMs: 5_000,
    leakDetectionMs: 0,
    metrics: false,
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
  };
  switch (args.db) {
    case 'pglite': {
      const pool = createPool(pgliteAdapter(), options);
      return erase<PgliteConnection>({
        kind: 'pglite',
        label: 'pglite (embedded PostgreSQL, in-memory)',
        pool,
        isolation: 'serializable',
        async query(conn, sql, params) {
          const r = await conn.query<Row>(sql, params === undefined ? undefined : [...params]);
          return { rows: r.rows, affected: r.affectedRows ?? 0 };
        },
        sleepSql: undefined,
        backendIdSql: undefined,
        killBackend: () => Promise.reject(new Error('PGlite has no backend to kill')),
        close: async (timeoutMs) => {
          await pool.close({ timeoutMs });
        },
      });
    }
    case 'pg': {
      const adapter = pgAdapter(args.url as string);
      const pool = createPool(adapter, options);
      const adminPool = createPool(pgAdapter(args.url as string), admin);
      const query = async (conn: Client, sql: string, params?: readonly unknown[]): Promise<QueryResult> => {
        const r = await conn.query<Row>(sql, params === undefined ? undefined : [...params]);
        return { rows: r.rows, affected: r.rowCount ?? 0 };
      };
      return erase<Client>({
        kind: 'pg',
        label: `pg ${adapter.target}`,
        pool,
        isolation: 'serializable',
        query,
        sleepSql: 'SELECT pg_sleep($1)',
        backendIdSql: 'SELECT pg_backend_pid() AS id',
        async killBackend(id) {
          await adminPool.withLease((conn) => query(conn, 'SELECT pg_terminate_backend($1)', [id]));
        },
        close: async (timeoutMs) => {
          await Promise.all([pool.close({ timeoutMs }), adminPool.close({ timeoutMs })]);
        },
      });
    }
    case 'mysql': {
      const adapter = mysqlAdapter(args.url as string);
      const pool = createPool(adapter, options);
      const adminPool = createPool(mysqlAdapter(args.url as string), admin);
      const query = async (conn: Connection, sql: string, params?: readonly unknown[]): Promise<QueryResult> => {
        const [result] = await conn.query(sql.replace(/\$\d+/g, '?'), params === undefined ? undefined : [...params]);
        if (Array.isArray(result)) return { rows: result as Row[], affected: 0 };
        return { rows: [], affected: (result as { affectedRows?: number }).affectedRows ?? 0 };
      };
      return erase<Connection>({
        kind: 'mysql',
        label: `mysql ${adapter.target}`,
        pool,
        isolation: undefined,
        query,
        sleepSql: 'SELECT SLEEP($1)',
        backendIdSql: 'SELECT CONNECTION_ID() AS id',
        async killBackend(id) {
          if (!Number.isSafeInteger(id)) throw new Error(`not a connection id: ${id}`);
          await adminPool.withLease((conn) => query(conn, `KILL ${id}`));
        },
        close: async (timeoutMs) => {
          await Promise.all([pool.close({ timeoutMs }), adminPool.close({ timeoutMs })]);
        },
      });
    }
  }
}

/** One round trip, bounded: the first connection, with its real error (unreachable server, bad password …). */
export async function probe(db: BankDb, acquireTimeoutMs: number): Promise<void> {
  await db.pool.withLease((conn) => db.query(conn, 'SELECT 1'), { acquireTimeoutMs });
}

/** Drop and recreate the table: the suspense account (0, balance 0) and accounts 1..n at `balance`. */
export async function setupTable(db: BankDb, table: string, accounts: number, balance: number): Promise<void> {
  await db.pool.withLease(
    async (conn) => {
      await db.query(conn, `DROP TABLE IF EXISTS ${table}`);
      if (db.kind === 'mysql') {
        await db.query(conn, `CREATE TABLE ${table} (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB`);
        await db.query(conn, `INSERT INTO ${table} (id, balance) VALUES (${SUSPENSE_ACCOUNT}, 0)`);
        const chunk = 1_000;
        for (let first = 1; first <= accounts; first += chunk) {
          const last = Math.min(accounts, first + chunk - 1);
          const rows: string[] = [];
          for (let id = first; id <= last; id++) rows.push(`(${id}, ${balance})`);
          await db.query(conn, `INSERT INTO ${table} (id, balance) VALUES ${rows.join(', ')}`);
        }
      } else {
        await db.query(conn, `CREATE TABLE ${table} (id integer PRIMARY KEY, balance bigint NOT NULL)`);
        await db.query(conn, `INSERT INTO ${table} (id, balance) SELECT g, CASE WHEN g = ${SUSPENSE_ACCOUNT} THEN 0 ELSE $1::bigint END FROM generate_series(0, $2::integer) AS g`, [
          balance,
          accounts,
        ]);
      }
    },
    // Seeding a large table may take a while: this lease is not a leak.
    { timeoutMs: 600_000 },
  );
}

/** Sum of every balance (committed data), as a bigint. */
export async function totalBalance(db: BankDb, table: string): Promise<bigint> {
  return db.pool.withLease(async (conn) => {
    const { rows } = await db.query(conn, `SELECT COALESCE(SUM(balance), 0) AS total, COUNT(*) AS n FROM ${table}`);
    return BigInt(String(rows[0]?.['total'] ?? '0'));
  });
}
