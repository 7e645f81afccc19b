/**
 * The shared behaviour suite (test/shared/behaviour.ts) on a real MariaDB/MySQL through the mysql2
 * adapter (MYSQL_URL, default mysql://root@127.0.0.1:3306/test). Tables are prefixed `beh_mysql_<pid>_`;
 * the password user is `lp_beh_<pid>` (unique per run).
 */
import { createConnection } from 'mysql2/promise';
import type { Connection } from 'mysql2/promise';
import { mysqlAdapter } from '../../adapters/mysql2';
import { describeBehaviour, eventually, type Admin, type Row } from '../shared/behaviour';

const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const server = new URL(MYSQL_URL);
const HOST = server.hostname;
const PORT = server.port === '' ? 3306 : Number(server.port);
/** Unique per process: two runs of this file at once (two developers, two jest invocations) never collide. */
const RUN = process.pid.toString(36);
const PW_USER = `lp_beh_${RUN}`;
const USER_HOSTS = ['%', '127.0.0.1', 'localhost'];

function rowsOf(result: unknown): Row[] {
  const first: unknown = Array.isArray(result) ? result[0] : undefined;
  return Array.isArray(first) ? (first as Row[]) : [];
}

async function alive(admin: Admin, id: number): Promise<boolean> {
  const [row] = await admin.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ?', [id]);
  return Number(row?.n) > 0;
}

describeBehaviour<Connection>({
  name: 'mysql2',
  prefix: `beh_mysql_${RUN}`,
  capabilities: { sessionPerConnection: true, concurrentSessions: true, kill: true, cancel: true, credentials: true, abortsOnError: false },
  adapter: () => mysqlAdapter(MYSQL_URL),
  async openAdmin(): Promise<Admin> {
    const conn = await createConnection(MYSQL_URL);
    conn.on('error', () => undefined);
    return {
      query: async (sql, params) => rowsOf(await conn.query(sql, params)),
      close: () => conn.end(),
    };
  },
  query: async (conn, sql, params) => rowsOf(await conn.query(sql, params)),
  ph: () => '?',
  beginSql: 'START TRANSACTION',
  async serverId(conn) {
    const [row] = rowsOf(await conn.query('SELECT CONNECTION_ID() AS id'));
    return Number(row?.id);
  },
  async txStatus(conn) {
    const [row] = rowsOf(await conn.query('SELECT @@in_transaction AS t'));
    return Number(row?.t) === 1 ? 'in_tx' : 'idle';
  },
  async kill(admin, id) {
    await admin.query(`KILL ${Number(id)}`);
    await eventually(`connection ${id} is gone`, async () => !(await alive(admin, id)));
  },
  sleepSql: (seconds) => `SELECT SLEEP(${seconds})`,
  async runningStatement(admin, id) {
    const [row] = await admin.query('SELECT INFO AS info FROM information_schema.PROCESSLIST WHERE ID = ?', [id]);
    return typeof row?.info === 'string' ? row.info : undefined;
  },
  async badCredentials() {
    const right = 'Right-Beh4v-pw';
    const wrong = 'Wr0ng-Beh4v-S3cret/:@#';
    const admin = await createConnection(MYSQL_URL);
    for (const host of USER_HOSTS) {
      await admin.query(`DROP USER IF EXISTS '${PW_USER}'@'${host}'`);
      await admin.query(`CREATE USER '${PW_USER}'@'${host}' IDENTIFIED BY ?`, [right]);
    }
    return {
      adapter: mysqlAdapter(`mysql://${PW_USER}:${encodeURIComponent(wrong)}@${HOST}:${PORT}/`),
      secrets: [wrong, encodeURIComponent(wrong), right],
      cleanup: async () => {
        for (const host of USER_HOSTS) await admin.query(`DROP USER IF EXISTS '${PW_USER}'@'${host}'`);
        await admin.end();
      },
    };
  },
});
