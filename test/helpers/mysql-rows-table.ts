/**
 * The fixture the MySQL lifecycle suites share: an admin connection, a rows table named after the
 * suite's topic and the jest worker's pid (another jest run on this machine never drops ours), and
 * the pools a test made, closed after each test. Call at the top level of a test file.
 */
import { createConnection, type Connection } from 'mysql2/promise';
import type { Pool } from '../../src';

export const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

export interface MysqlRowsTable {
  /** `mysql_<topic>_rows_<pid>`: `id` auto-increment, `tag` text. */
  readonly table: string;
  /** The admin connection (open between beforeAll and afterAll). */
  readonly admin: Connection;
  /** Close `pool` after the current test. */
  track<P extends Pool<Connection>>(pool: P): P;
}

export function mysqlRowsTable(topic: string): MysqlRowsTable {
  const table = `mysql_${topic}_rows_${process.pid}`;
  const pools: Pool<Connection>[] = [];
  let admin: Connection | undefined;

  beforeAll(async () => {
    admin = await createConnection(MYSQL_URL);
    await admin.query(`DROP TABLE IF EXISTS ${table}`);
    await admin.query(`CREATE TABLE ${table} (id INT AUTO_INCREMENT PRIMARY KEY, tag VARCHAR(64) NOT NULL) ENGINE=InnoDB`);
  });
  afterAll(async () => {
    await admin?.query(`DROP TABLE IF EXISTS ${table}`);
    await admin?.end();
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 100 })));
  });

  return {
    table,
    get admin(): Connection {
      if (admin === undefined) throw new Error('the admin connection is open only inside tests');
      return admin;
    },
    track(pool) {
      pools.push(pool);
      return pool;
    },
  };
}
