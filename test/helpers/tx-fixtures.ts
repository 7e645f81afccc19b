/**
 * The fixture of the "all or nothing" suites (tx-all-or-nothing, tx-adversary) on each server: an
 * admin connection outside the pool (the judge), the tables named per run (another jest run on
 * this machine never drops ours), emptied before each test, and the pools a test made, closed after
 * it. Call at the top level of a test file.
 */
import { Client } from 'pg';
import { createConnection, type Connection } from 'mysql2/promise';
import { mysqlAdapter } from '../../adapters/mysql2';
import { pgAdapter } from '../../adapters/pg';
import { poolMaker, type Row } from '../shared/behaviour';
import { waitFor } from './lifecycle';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const RUN = process.pid.toString(36);

/** PostgreSQL: `<prefix>_<run>_rows (id int PRIMARY KEY)`. */
export function pgTxFixture(prefix: string): {
  readonly rows: string;
  readonly url: string;
  readonly pools: ReturnType<typeof poolMaker<Client>>;
  admin(): Client;
  ids(): Promise<number[]>;
  insert(conn: Client, id: number): Promise<unknown>;
} {
  const rows = `${prefix}_${RUN}_rows`;
  const pools = poolMaker(() => pgAdapter(PG_URL), { name: prefix });
  let admin: Client | undefined;
  const theAdmin = (): Client => {
    if (admin === undefined) throw new Error('the admin connection is open only inside tests');
    return admin;
  };
  beforeAll(async () => {
    admin = new Client(PG_URL);
    admin.on('error', () => undefined);
    await admin.connect();
    await admin.query(`DROP TABLE IF EXISTS ${rows}`);
    await admin.query(`CREATE TABLE ${rows} (id int PRIMARY KEY)`);
  });
  beforeEach(async () => {
    await theAdmin().query(`TRUNCATE ${rows}`);
  });
  afterEach(async () => {
    await pools.closeAll();
  });
  afterAll(async () => {
    await admin?.query(`DROP TABLE IF EXISTS ${rows}`);
    await admin?.end();
  });
  return {
    rows,
    url: PG_URL,
    pools,
    admin: theAdmin,
    ids: async () => (await theAdmin().query<{ id: number }>(`SELECT id FROM ${rows} ORDER BY id`)).rows.map((r) => r.id),
    insert: (conn, id) => conn.query(`INSERT INTO ${rows} (id) VALUES ($1)`, [id]),
  };
}

/** The rows of a mysql2 promise call's result (`[rows, fields]`). */
export function rowsOf(result: unknown): Row[] {
  const first: unknown = Array.isArray(result) ? result[0] : undefined;
  return Array.isArray(first) ? (first as Row[]) : [];
}

/** A statement on a mysql2 promise connection, its rows. */
export async function q(conn: Connection, sql: string, params?: unknown[]): Promise<Row[]> {
  return rowsOf(await conn.query(sql, params));
}

/** MariaDB/MySQL: `<prefix>_<run>_rows (id int PRIMARY KEY, v int NOT NULL)` and `<prefix>_<run>_other (id int PRIMARY KEY)`. */
export function mysqlTxFixture(prefix: string): {
  readonly rows: string;
  readonly other: string;
  readonly url: string;
  readonly pools: ReturnType<typeof poolMaker<Connection>>;
  admin(): Connection;
  ids(table?: string): Promise<number[]>;
  insert(conn: Connection, id: number): Promise<Row[]>;
  bump(conn: Connection, id: number): Promise<Row[]>;
  untilLockWait(): Promise<void>;
} {
  const rows = `${prefix}_${RUN}_rows`;
  const other = `${prefix}_${RUN}_other`;
  const pools = poolMaker(() => mysqlAdapter(MYSQL_URL), { name: prefix });
  let admin: Connection | undefined;
  const theAdmin = (): Connection => {
    if (admin === undefined) throw new Error('the admin connection is open only inside tests');
    return admin;
  };
  beforeAll(async () => {
    admin = await createConnection(MYSQL_URL);
    await admin.query(`DROP TABLE IF EXISTS ${rows}, ${other}`);
    await admin.query(`CREATE TABLE ${rows} (id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB`);
    await admin.query(`CREATE TABLE ${other} (id int PRIMARY KEY) ENGINE=InnoDB`);
  });
  beforeEach(async () => {
    await theAdmin().query(`DELETE FROM ${rows}`);
    await theAdmin().query(`DELETE FROM ${other}`);
  });
  afterEach(async () => {
    await pools.closeAll();
  });
  afterAll(async () => {
    await admin?.query(`DROP TABLE IF EXISTS ${rows}, ${other}`);
    await admin?.end();
  });
  return {
    rows,
    other,
    url: MYSQL_URL,
    pools,
    admin: theAdmin,
    ids: async (table = rows) => (await q(theAdmin(), `SELECT id FROM ${table} ORDER BY id`)).map((r) => Number(r['id'])),
    insert: (conn, id) => q(conn, `INSERT INTO ${rows} (id, v) VALUES (?, 0)`, [id]),
    bump: (conn, id) => q(conn, `UPDATE ${rows} SET v = v + 1 WHERE id = ?`, [id]),
    /**
     * Until another session of this database is running an UPDATE (a transaction waiting for its
     * row lock). The processlist, not innodb_trx: MariaDB serves innodb_trx from a cache that a
     * poller on one connection can keep seeing stale.
     */
    untilLockWait: () =>
      waitFor('a transaction waits for a row lock', async () => Number((await q(theAdmin(), `SELECT count(*) AS n FROM information_schema.processlist WHERE db = DATABASE() AND command = 'Query' AND info LIKE 'UPDATE %' AND id <> CONNECTION_ID()`))[0]?.['n']) > 0),
  };
}
