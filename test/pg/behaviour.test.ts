/**
 * The shared behaviour suite (test/shared/behaviour.ts) on a real PostgreSQL through the pg adapter
 * (PG_URL, default postgres://postgres@127.0.0.1:5432/test). Tables are prefixed `beh_pg_<pid>_`.
 */
import { Client } from 'pg';
import { pgAdapter } from '../../adapters/pg';
import { describeBehaviour, eventually, type Admin, type Row } from '../shared/behaviour';
import { pgPasswordServer } from '../helpers/pg-password-server';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** Unique per process: two runs of this file at once (two developers, two jest invocations) never collide. */
const RUN = process.pid.toString(36);

async function alive(admin: Admin, pid: number): Promise<boolean> {
  const [row] = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [pid]);
  return Number(row?.n) > 0;
}

describeBehaviour<Client>({
  name: 'pg',
  prefix: `beh_pg_${RUN}`,
  capabilities: { sessionPerConnection: true, concurrentSessions: true, kill: true, cancel: true, credentials: true, abortsOnError: true },
  adapter: () => pgAdapter(PG_URL),
  async openAdmin(): Promise<Admin> {
    const client = new Client(PG_URL);
    client.on('error', () => undefined);
    await client.connect();
    return {
      query: async (sql, params) => (await client.query(sql, params)).rows as Row[],
      close: () => client.end(),
    };
  },
  query: async (conn, sql, params) => (await conn.query(sql, params)).rows as Row[],
  ph: (n) => `$${n}`,
  beginSql: 'BEGIN',
  async serverId(conn) {
    const { rows } = await conn.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    return Number(rows[0]?.pid);
  },
  async txStatus(conn) {
    // pg >= 8.21: the status of the last ReadyForQuery ('I' idle, 'T' in a transaction, 'E' failed).
    const status = conn.getTransactionStatus();
    if (status === 'I') return 'idle';
    if (status === 'T') return 'in_tx';
    if (status === 'E') return 'failed';
    throw new Error(`unexpected transaction status ${String(status)}`);
  },
  async kill(admin, pid) {
    // With a timeout, pg_terminate_backend waits until the backend has actually exited.
    const [row] = await admin.query('SELECT pg_terminate_backend($1, 5000) AS ok', [pid]);
    expect(row?.ok).toBe(true);
    await eventually(`backend ${pid} is gone`, async () => !(await alive(admin, pid)));
  },
  async lastStatement(admin, pid) {
    const [row] = await admin.query('SELECT query FROM pg_stat_activity WHERE pid = $1', [pid]);
    return String(row?.query);
  },
  sleepSql: (seconds) => `SELECT pg_sleep(${seconds})`,
  async runningStatement(admin, pid) {
    const [row] = await admin.query("SELECT query FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [pid]);
    return row === undefined ? undefined : String(row.query);
  },
  async badCredentials() {
    const srv = await pgPasswordServer('lp_beh_user');
    const password = 'Beh4v-S3cr3t/pw:@#';
    return {
      adapter: pgAdapter(`postgres://lp_beh_user:${encodeURIComponent(password)}@127.0.0.1:${srv.port}/lpdb`),
      secrets: [password, encodeURIComponent(password)],
      cleanup: async () => {
        // The password really went through the authentication exchange (and came back in the error).
        expect(srv.received).toContain(password);
        await srv.close();
      },
    };
  },
});
