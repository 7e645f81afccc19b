/**
 * Behind PgBouncer (transaction pooling), started here as a child process on 127.0.0.1 in front
 * of the shared PostgreSQL (scripts/ensure-tools.sh installs it). With the pool's defaults:
 * - the shared behaviour suite (commit visibility, rollback, nested savepoints, retries, the dirty
 *   connection guard, cancel, error codes) runs unchanged through PgBouncer;
 * - a bank-transfer load with fewer server connections than pool connections keeps the balance
 *   invariant and never hands back a connection inside a transaction;
 * - what must change behind PgBouncer, shown rather than claimed: startup parameters such as the
 *   adapter's `statementTimeoutMs` are refused by PgBouncer (a clear CONNECT_FAILED) and `SET LOCAL`
 *   inside the transaction is the way; session `SET` outside a transaction leaks to other clients;
 *   `resetOnRelease` (DISCARD ALL) runs but resets a random server connection, so it buys nothing.
 * Server ids: in transaction pooling a client is tied to a server backend only inside a
 * transaction, so `serverId` is the backend pid inside one and the client's own (PgBouncer-issued)
 * key outside (negative numbers: never confused with a pid).
 */
import { Client } from 'pg';
import { pgAdapter } from '../../adapters/pg';
import { createPool } from '../../src/index';
import { describeBehaviour, type Admin, type Row } from '../shared/behaviour';
import { harness, problems } from './scenarios/scenarios';
import { runLoad } from './scenarios/bank';
import { startPgBouncer, type PgBouncer } from './scenarios/pgbouncer';
import { postgres } from './scenarios/targets';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
let bouncer: PgBouncer | undefined;

function url(): string {
  if (bouncer === undefined) throw new Error('pgbouncer is not running');
  return bouncer.url;
}

const clientIds = new Map<number, number>();
function clientId(conn: Client): number {
  const key = (conn as unknown as { processID: number }).processID;
  let id = clientIds.get(key);
  if (id === undefined) {
    id = -(clientIds.size + 1);
    clientIds.set(key, id);
  }
  return id;
}

async function openDirectAdmin(): Promise<Admin> {
  const client = new Client(PG_URL);
  client.on('error', () => undefined);
  await client.connect();
  return {
    query: async (sql, params) => (await client.query(sql, params)).rows as Row[],
    close: () => client.end(),
  };
}

describeBehaviour<Client>({
  name: 'pgbouncer',
  prefix: 'beh_pgbouncer',
  capabilities: {
    concurrentSessions: true,
    // Transaction pooling: outside a transaction a client has no server session of its own.
    sessionPerConnection: false,
    // Killing a server backend does not kill an idle client connection: PgBouncer just opens another.
    kill: false,
    cancel: true,
    // Authentication is PgBouncer's business here (auth_type trust), not the pool's.
    credentials: false,
    abortsOnError: true,
  },
  async setup() {
    bouncer = await startPgBouncer(postgres.endpoint);
  },
  async teardown() {
    await bouncer?.stop();
    bouncer = undefined;
  },
  adapter: () => pgAdapter(url()),
  // Reads what others committed, straight from the server (never through PgBouncer).
  openAdmin: openDirectAdmin,
  query: async (conn, sql, params) => (await conn.query(sql, params)).rows as Row[],
  ph: (n) => `$${n}`,
  beginSql: 'BEGIN',
  async serverId(conn) {
    if (conn.getTransactionStatus() === 'I') return clientId(conn);
    const { rows } = await conn.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    return Number(rows[0]?.pid);
  },
  async txStatus(conn) {
    const status = conn.getTransactionStatus();
    if (status === 'I') return 'idle';
    if (status === 'T') return 'in_tx';
    if (status === 'E') return 'failed';
    throw new Error(`unexpected transaction status ${String(status)}`);
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
});

describe('pgbouncer: under load and what must change', () => {
  const quiet = { warn: () => undefined, error: () => undefined };

  test('bank transfers with 10 pool connections over 8 server connections: whole, clean, invariant held', async () => {
    const b = bouncer as PgBouncer;
    const adapter = postgres.adapter(b.endpoint, { tag: 'lp_chaos_pgbouncer' });
    // Tables are made and judged directly on the server; the pool goes through PgBouncer.
    const report = await harness(postgres, 'pgbouncer load', postgres.endpoint, adapter, { max: 10 }, async ({ pool, bank }) => {
      const stopAt = performance.now() + 2_000;
      const outcomes = await runLoad(pool, bank, { workers: 12, stop: () => performance.now() > stopAt, tx: { retries: 2 }, sleepMs: 2 });
      return { outcomes };
    });
    expect(problems(report)).toEqual([]);
    expect(report.summary.committed).toBe(report.summary.attempted);
    expect(report.returnedInTransaction).toBe(0);
    expect(report.probedInTransaction).toBe(0);
  }, 60_000);

  test('SET LOCAL inside withTx works and stays in its transaction', async () => {
    const pool = createPool(pgAdapter(url()), { max: 2, logger: quiet });
    try {
      const inside = await pool.withTx(async (conn) => {
        await conn.query("SET LOCAL statement_timeout = '1234ms'");
        return (await conn.query<{ t: string }>("SELECT current_setting('statement_timeout') AS t")).rows[0]?.t;
      });
      expect(inside).toBe('1234ms');
      const after = await pool.withTx(async (conn) => (await conn.query<{ t: string }>("SELECT current_setting('statement_timeout') AS t")).rows[0]?.t);
      expect(after).not.toBe('1234ms');
    } finally {
      await pool.close({ timeoutMs: 1_000 });
    }
  });

  test("the adapter's startup parameters (statementTimeoutMs …) are refused by PgBouncer: a clear CONNECT_FAILED", async () => {
    const pool = createPool(pgAdapter(url(), { statementTimeoutMs: 5_000 }), { max: 1, connectTimeoutMs: 3_000, acquireTimeoutMs: 3_000, logger: quiet });
    try {
      const err = await pool.withTx(async () => 'never').then(
        () => undefined,
        (e: unknown) => e as Error & { code?: string },
      );
      expect(err?.code).toBe('CONNECT_FAILED');
      expect(err?.message).toMatch(/unsupported startup parameter/i);
    } finally {
      await pool.close({ timeoutMs: 1_000 });
    }
  });

  test('named prepared statements collide across clients behind PgBouncer 1.18 (42P05): use unnamed (plain parameterised) queries', async () => {
    // One server connection: every transaction of every client lands on it.
    const single = await startPgBouncer(postgres.endpoint, { poolSize: 1 });
    const pool = createPool(pgAdapter(single.url), { max: 2, logger: quiet });
    try {
      const named = (n: number) => ({ name: 'lp_chaos_named', text: 'SELECT $1::int AS n', values: [n] });
      const [a, b] = await Promise.all([pool.acquire(), pool.acquire()]);
      await a.release();
      await b.release();
      // Two pool connections (two PgBouncer clients), one server connection.
      const first = await pool.withTx(async (conn) => (await conn.query<{ n: number }>(named(1))).rows[0]?.n);
      expect(first).toBe(1);
      const results = await Promise.all(
        [2, 3].map((n) =>
          pool.withTx(async (conn) => (await conn.query<{ n: number }>(named(n))).rows[0]?.n).then(
            (v) => ({ ok: true as const, v }),
            (e: unknown) => ({ ok: false as const, code: (e as { code?: string }).code }),
          ),
        ),
      );
      // The client that did not prepare it tries to, on a server connection where it exists.
      expect(results).toContainEqual({ ok: false, code: '42P05' });
      // Unnamed statements have no such problem.
      const plain = await Promise.all([4, 5].map((n) => pool.withTx(async (conn) => (await conn.query<{ n: number }>('SELECT $1::int AS n', [n])).rows[0]?.n)));
      expect(plain).toEqual([4, 5]);
    } finally {
      await pool.close({ timeoutMs: 1_000 });
      await single.stop();
    }
  });

  test('resetOnRelease: true works behind PgBouncer (DISCARD ALL outside a transaction) but cannot isolate sessions', async () => {
    const pool = createPool(pgAdapter(url()), { max: 2, resetOnRelease: true, logger: quiet });
    try {
      for (let i = 0; i < 5; i++) {
        expect(await pool.withTx(async (conn) => (await conn.query<{ n: number }>('SELECT 1 AS n')).rows[0]?.n)).toBe(1);
      }
      expect(pool.stats().size).toBeGreaterThan(0);
    } finally {
      await pool.close({ timeoutMs: 1_000 });
    }
  });
});
