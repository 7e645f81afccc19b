/**
 * The two databases the chaos scenarios run on, behind one small interface: how to build an
 * adapter (to the real server, or to a fault proxy in front of it), how to run SQL on a pooled
 * connection, what the driver says about a connection's transaction, what the server says, and
 * how to kill a backend. Shared by `test/chaos/*.test.ts` and `bench/chaos-report.ts`.
 */
import { Client, type ClientConfig } from 'pg';
import { createConnection, type Connection } from 'mysql2/promise';
import { pgAdapter } from '../../../adapters/pg';
import { mysqlAdapter } from '../../../adapters/mysql2';
import type { Adapter, TxStatus } from '../../../src/adapter';

export type Row = Record<string, unknown>;

export interface Endpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
}

/** An admin connection outside any pool (setup, verification, killing backends). */
export interface Admin {
  query(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  close(): Promise<void>;
}

export interface DbTarget {
  readonly name: 'postgres' | 'mariadb';
  /** The shared server from PG_URL / MYSQL_URL. */
  readonly endpoint: Endpoint;
  /** An adapter to `endpoint`, or to the same server through `port` (a fault proxy) when given. */
  adapter(endpoint: Endpoint, options?: { port?: number; tag?: string }): Adapter<object>;
  admin(endpoint: Endpoint): Promise<Admin>;
  /** Run `sql` (`?` placeholders) on a pooled connection (`lease.conn`). */
  query(conn: object, sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** What the driver reports right now (release probe): `'idle'` is the only acceptable answer at return. */
  driverTxStatus(adapter: Adapter<object>, raw: object): TxStatus;
  /** What the server says, with a round trip: is this session inside a transaction? */
  serverInTransaction(conn: object): Promise<boolean>;
  /** Backend id of a raw pooled connection (pid / thread id), for killing it. */
  backendId(raw: object): number | undefined;
  /** Kill one backend from `admin`. */
  kill(admin: Admin, id: number): Promise<void>;
  /** A statement that sleeps `ms` on the server. */
  sleepSql(ms: number): string;
}

function endpointFromUrl(url: string, defaultPort: number): Endpoint {
  const u = new URL(url);
  return {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || defaultPort),
    user: decodeURIComponent(u.username) || 'root',
    database: decodeURIComponent(u.pathname.slice(1)) || 'test',
  };
}

/** `?` → `$1, $2 …` for PostgreSQL. */
function pgText(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

export const postgres: DbTarget = {
  name: 'postgres',
  endpoint: endpointFromUrl(process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test', 5432),
  adapter(endpoint, options = {}) {
    const config: ClientConfig = {
      host: endpoint.host,
      port: options.port ?? endpoint.port,
      user: endpoint.user,
      database: endpoint.database,
      application_name: options.tag ?? 'lp_chaos',
    };
    return pgAdapter(config) as unknown as Adapter<object>;
  },
  async admin(endpoint) {
    const client = new Client({ host: endpoint.host, port: endpoint.port, user: endpoint.user, database: endpoint.database });
    client.on('error', () => undefined);
    await client.connect();
    return {
      async query(sql, params = []) {
        return (await client.query(pgText(sql), [...params])).rows as Row[];
      },
      close: () => client.end().catch(() => undefined),
    };
  },
  async query(conn, sql, params = []) {
    return (await (conn as Client).query(pgText(sql), [...params])).rows as Row[];
  },
  driverTxStatus(_adapter, raw) {
    const client = raw as Client & { readyForQuery?: boolean };
    if (client.readyForQuery === false) return 'unknown';
    switch (client.getTransactionStatus()) {
      case 'I':
        return 'idle';
      case 'T':
        return 'in_tx';
      case 'E':
        return 'failed';
      default:
        return 'unknown';
    }
  },
  async serverInTransaction(conn) {
    // The ReadyForQuery after this statement carries the server's transaction status.
    await (conn as Client).query('SELECT 1');
    return (conn as Client).getTransactionStatus() !== 'I';
  },
  backendId(raw) {
    const pid = (raw as { processID?: unknown }).processID;
    return typeof pid === 'number' ? pid : undefined;
  },
  async kill(admin, id) {
    await admin.query('SELECT pg_terminate_backend(?)', [id]);
  },
  sleepSql: (ms) => `SELECT pg_sleep(${(ms / 1000).toFixed(3)})`,
};

export const mariadb: DbTarget = {
  name: 'mariadb',
  endpoint: endpointFromUrl(process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test', 3306),
  adapter(endpoint, options = {}) {
    return mysqlAdapter({
      host: endpoint.host,
      port: options.port ?? endpoint.port,
      user: endpoint.user,
      database: endpoint.database,
    }) as unknown as Adapter<object>;
  },
  async admin(endpoint) {
    const conn = await createConnection({ host: endpoint.host, port: endpoint.port, user: endpoint.user, database: endpoint.database });
    conn.on('error', () => undefined);
    return {
      async query(sql, params = []) {
        const [rows] = await conn.query(sql, [...params]);
        return (Array.isArray(rows) ? rows : []) as Row[];
      },
      close: () => conn.end().catch(() => undefined),
    };
  },
  async query(conn, sql, params = []) {
    const [rows] = await (conn as Connection).query(sql, [...params]);
    return (Array.isArray(rows) ? rows : []) as Row[];
  },
  driverTxStatus(adapter, raw) {
    return adapter.txStatus?.(raw) ?? 'unknown';
  },
  async serverInTransaction(conn) {
    const [rows] = await (conn as Connection).query('SELECT @@in_transaction AS t');
    return Number((rows as Row[])[0]?.['t']) !== 0;
  },
  backendId(raw) {
    const id = (raw as { threadId?: unknown }).threadId;
    return typeof id === 'number' ? id : undefined;
  },
  async kill(admin, id) {
    try {
      await admin.query(`KILL ${Number(id)}`);
    } catch (err) {
      // ER_NO_SUCH_THREAD: the connection ended on its own meanwhile.
      if ((err as { errno?: unknown }).errno !== 1094) throw err;
    }
  },
  sleepSql: (ms) => `DO SLEEP(${(ms / 1000).toFixed(3)})`,
};

export const TARGETS: readonly DbTarget[] = [postgres, mariadb];
