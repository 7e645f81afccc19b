/**
 * PostgreSQL-specific transaction behaviour through the pool, on a real server (PG_URL, default
 * postgres://postgres@127.0.0.1:5432/test): BEGIN options really applied, a connection lost during
 * COMMIT, a serialization failure raised by COMMIT itself, resetOnRelease with DISCARD ALL.
 * Tables and functions are prefixed `pg_tx_<pid>_` (unique per run).
 */
import { Client, Query } from 'pg';
import { pgAdapter } from '../../adapters/pg';
import { ConfigError, TxOutcomeUnknownError, type IsolationLevel } from '../../src';
import { barrier, eventually, poolMaker } from '../shared/behaviour';
import { rejection } from '../helpers/unit';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** Unique per process: two runs of this file at once (two developers, two jest invocations) never collide. */
const RUN = process.pid.toString(36);
const ROWS = `pg_tx_${RUN}_rows`;
const SLOW = `pg_tx_${RUN}_slow`;
const SLOW_FN = `pg_tx_${RUN}_slow_check`;

const pools = poolMaker(() => pgAdapter(PG_URL), { name: 'pg_tx' });
let admin: Client;

async function ids(table = ROWS): Promise<number[]> {
  return (await admin.query<{ id: number }>(`SELECT id FROM ${table} ORDER BY id`)).rows.map((r) => r.id);
}

async function show(conn: Client, setting: string): Promise<string> {
  const { rows } = await conn.query<Record<string, string>>(`SHOW ${setting}`);
  return String(rows[0]?.[setting]);
}

async function backendPid(conn: Client): Promise<number> {
  return (await conn.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;
}

beforeAll(async () => {
  admin = new Client(PG_URL);
  admin.on('error', () => undefined);
  await admin.connect();
  await admin.query(`DROP TABLE IF EXISTS ${ROWS}, ${SLOW}`);
  await admin.query(`CREATE TABLE ${ROWS} (id int PRIMARY KEY)`);
  await admin.query(`CREATE TABLE ${SLOW} (id int PRIMARY KEY)`);
  // A deferred constraint trigger that makes COMMIT itself slow: it runs at COMMIT and sleeps.
  await admin.query(`CREATE OR REPLACE FUNCTION ${SLOW_FN}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_sleep(10); RETURN NULL; END $$`);
  await admin.query(`CREATE CONSTRAINT TRIGGER ${SLOW}_commit AFTER INSERT ON ${SLOW}
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${SLOW_FN}()`);
});

beforeEach(async () => {
  await admin.query(`TRUNCATE ${ROWS}, ${SLOW}`);
});

afterEach(async () => {
  await pools.closeAll();
});

afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${ROWS}, ${SLOW}`);
  await admin.query(`DROP FUNCTION IF EXISTS ${SLOW_FN}()`);
  await admin.end();
});

describe('the lease\'s conn is the driver\'s own client', () => {
  test('a pg.Client behind the guard: callback and config-object query forms keep working inside withTx', async () => {
    const { pool } = makePool({ max: 1 });
    await pool.withTx(async (conn) => {
      expect(conn).toBeInstanceOf(Client);
      // Code written for a pg.Client, unchanged: the callback form, and a query config object.
      const viaCallback = await new Promise<number>((resolve, reject) =>
        conn.query(`INSERT INTO ${ROWS} (id) VALUES ($1) RETURNING id`, [1], (err, res) => (err ? reject(err) : resolve(res.rows[0].id))),
      );
      expect(viaCallback).toBe(1);
      const viaConfig = await conn.query<{ id: number }>({ text: `INSERT INTO ${ROWS} (id) VALUES ($1) RETURNING id`, values: [2], name: 'pg_tx_insert' });
      expect(viaConfig.rows).toEqual([{ id: 2 }]);
      expect(conn.getTransactionStatus?.()).toBe('T');
      // rowMode and a Submittable (pg's own Query object, as cursors and streams are) as pg serves them.
      const asArrays = await conn.query<unknown[]>({ text: 'SELECT 3 AS a, 4 AS b', rowMode: 'array' });
      expect(asArrays.rows).toEqual([[3, 4]]);
      const submittable = new Query(`SELECT id FROM ${ROWS} ORDER BY id`);
      const rows: unknown[] = [];
      submittable.on('row', (row: unknown) => rows.push(row));
      expect(conn.query(submittable)).toBe(submittable);
      await new Promise((resolve, reject) => submittable.on('end', resolve).on('error', reject));
      expect(rows).toEqual([{ id: 1 }, { id: 2 }]);
    });
    expect(await ids()).toEqual([1, 2]);
  });

  test('a query pg refuses before sending it rejects with pg\'s error; the connection is not taken for broken', async () => {
    const { pool, m } = makePool({ max: 1 });
    const pids = await pool.withLease(async (conn) => {
      const before = await backendPid(conn);
      const err = await rejection(conn.query({} as unknown as string));
      expect((err as Error).message).toMatch(/text or a name/);
      return [before, await backendPid(conn)];
    });
    const after = await pool.withLease((conn) => backendPid(conn));
    expect([pids[1], after]).toEqual([pids[0], pids[0]]);
    expect(await m('leasepool_connections_closed_total', { reason: 'broken' })).toBe(0);
  });

  test("a failing statement rejects with the server's error; thrown on, the transaction rolls back", async () => {
    const { pool } = makePool({ max: 1 });
    const err = await rejection(
      pool.withTx(async (conn) => {
        await conn.query(`INSERT INTO ${ROWS} (id) VALUES ($1)`, [7]);
        const failed = await rejection(conn.query('SELECT * FROM pg_tx_no_such_table'));
        expect(failed).toMatchObject({ code: '42P01' });
        expect(failed).toBeInstanceOf(Error);
        throw failed;
      }),
    );
    expect(err).toMatchObject({ code: '42P01' });
    expect(await ids()).toEqual([]);
  });
});

describe('BEGIN options are really applied', () => {
  test('each isolation level, as the server reports it inside the transaction (and in a savepoint)', async () => {
    const { pool, sent } = makePool();
    const levels: IsolationLevel[] = ['read uncommitted', 'read committed', 'repeatable read', 'serializable'];
    for (const isolation of levels) {
      await pool.withTx(
        async (conn) => {
          expect(await show(conn, 'transaction_isolation')).toBe(isolation);
          expect(await show(conn, 'transaction_read_only')).toBe('off');
          await pool.withTx(async (inner) => {
            expect(await show(inner, 'transaction_isolation')).toBe(isolation);
          });
        },
        { isolation },
      );
    }
    // No options: the server default, and a bare BEGIN.
    await pool.withTx(async (conn) => {
      expect(await show(conn, 'transaction_isolation')).toBe('read committed');
    });
    expect(sent.filter((s) => s.startsWith('BEGIN'))).toEqual([
      'BEGIN ISOLATION LEVEL READ UNCOMMITTED',
      'BEGIN ISOLATION LEVEL READ COMMITTED',
      'BEGIN ISOLATION LEVEL REPEATABLE READ',
      'BEGIN ISOLATION LEVEL SERIALIZABLE',
      'BEGIN',
    ]);
    // The session default is untouched afterwards.
    await pool.withLease(async (conn) => {
      expect(await show(conn, 'transaction_isolation')).toBe('read committed');
    });
  });

  test('readOnly: the server refuses writes (25006), the caller gets that error, nothing is written', async () => {
    const { pool } = makePool();
    let thrown: unknown;
    const err = await rejection(
      pool.withTx(
        async (conn) => {
          expect(await show(conn, 'transaction_read_only')).toBe('on');
          try {
            await conn.query(`INSERT INTO ${ROWS} VALUES (1)`);
          } catch (e) {
            thrown = e;
            throw e;
          }
        },
        { readOnly: true },
      ),
    );
    expect(err).toBe(thrown);
    expect((err as { code?: string }).code).toBe('25006');
    expect(await ids()).toEqual([]);

    await pool.withTx(
      async (conn) => {
        expect(await show(conn, 'transaction_read_only')).toBe('off');
        await conn.query(`INSERT INTO ${ROWS} VALUES (2)`);
      },
      { readOnly: false },
    );
    expect(await ids()).toEqual([2]);
  });

  test('deferrable applies to serializable read-only transactions; elsewhere it is a ConfigError', async () => {
    const { pool, sent } = makePool();
    await pool.withTx(
      async (conn) => {
        expect(await show(conn, 'transaction_deferrable')).toBe('on');
        expect(await show(conn, 'transaction_isolation')).toBe('serializable');
        expect(await show(conn, 'transaction_read_only')).toBe('on');
      },
      { isolation: 'serializable', readOnly: true, deferrable: true },
    );
    await pool.withTx(
      async (conn) => {
        expect(await show(conn, 'transaction_deferrable')).toBe('off');
      },
      { isolation: 'serializable', readOnly: true },
    );
    const before = sent.length;
    const err = await rejection(pool.withTx(async () => undefined, { deferrable: true }));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).fields).toEqual(['deferrable']);
    expect(sent.length).toBe(before);
  });
});

describe('COMMIT', () => {
  test('connection lost during COMMIT: TxOutcomeUnknownError (TX_OUTCOME_UNKNOWN), never retried', async () => {
    const { pool, sent, m } = makePool({ max: 2 });
    let runs = 0;
    let pid: number | undefined;
    const outcome = rejection(
      pool.withTx(
        async (conn) => {
          runs++;
          pid = await backendPid(conn);
          await conn.query(`INSERT INTO ${SLOW} VALUES (1)`);
        },
        { retries: 5, retryBaseDelayMs: 1 },
      ),
    );
    // Wait until COMMIT is running the deferred trigger (sleeping), then terminate that backend.
    await eventually('COMMIT is in progress', async () => {
      if (pid === undefined) return false;
      const { rows } = await admin.query(
        "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query = 'COMMIT' AND wait_event = 'PgSleep'",
        [pid],
      );
      return rows.length === 1;
    });
    await admin.query('SELECT pg_terminate_backend($1, 5000)', [pid]);

    const err = await outcome;
    expect(err).toBeInstanceOf(TxOutcomeUnknownError);
    expect((err as TxOutcomeUnknownError).code).toBe('TX_OUTCOME_UNKNOWN');
    expect(pgAdapter(PG_URL).isFatal((err as Error).cause)).toBe(true); // the driver's own error, kept as cause
    expect(runs).toBe(1);
    expect(sent.filter((s) => s === 'COMMIT')).toHaveLength(1);
    expect(sent.filter((s) => s.startsWith('BEGIN'))).toHaveLength(1);
    expect(sent).not.toContain('ROLLBACK');
    expect(await m('leasepool_transactions_total', { outcome: 'unknown' })).toBe(1);
    expect(await m('leasepool_transactions_total', { outcome: 'retry' })).toBe(0);
    expect(await m('leasepool_transactions_total', { outcome: 'commit' })).toBe(0);
    expect(await ids(SLOW)).toEqual([]); // here the server died before committing
    await eventually('the connection is destroyed as broken', async () => (await m('leasepool_connections_closed_total', { reason: 'broken' })) === 1);

    // The pool serves the next caller on a new connection.
    const next = await pool.withTx(async (conn) => {
      await conn.query(`INSERT INTO ${ROWS} VALUES (1)`);
      return backendPid(conn);
    });
    expect(next).not.toBe(pid);
    expect(await ids()).toEqual([1]);
  });

  test('a serialization failure raised by COMMIT itself is a refusal, not an unknown outcome: it is retried', async () => {
    const { pool, sent, m } = makePool({ max: 2 });
    const afterRead = barrier(2);
    const afterWrite = barrier(2);
    let runs = 0;
    // Write skew under SSI: each reads the set, then inserts a row the other's read covers.
    const writer = (id: number): Promise<void> =>
      pool.withTx(
        async (conn, tx) => {
          runs++;
          await conn.query(`SELECT count(*) FROM ${ROWS}`);
          if (tx.attempt === 1) await afterRead.arrive();
          await conn.query(`INSERT INTO ${ROWS} VALUES ($1)`, [id]);
          if (tx.attempt === 1) await afterWrite.arrive();
        },
        { isolation: 'serializable', retries: 10, retryBaseDelayMs: 1 },
      );
    await Promise.all([writer(1), writer(2)]);
    expect(await ids()).toEqual([1, 2]);
    // The first round is deterministic (both have read and written before either commits): one COMMIT
    // is refused with 40001. Reruns race freely, so SSI may (rarely) refuse one of them too.
    const retries = await m('leasepool_transactions_total', { outcome: 'retry' });
    expect(retries).toBeGreaterThanOrEqual(1);
    expect(runs).toBe(2 + retries);
    expect(await m('leasepool_transactions_total', { outcome: 'unknown' })).toBe(0);
    expect(await m('leasepool_transactions_total', { outcome: 'commit' })).toBe(2);
    expect(await m('leasepool_transactions_total', { outcome: 'rollback' })).toBe(retries);
    // At least three COMMITs: a refusal came from COMMIT itself (not from a statement in the body),
    // and every refusal was answered with a ROLLBACK on the same, healthy connection.
    expect(sent.filter((s) => s === 'COMMIT').length).toBeGreaterThanOrEqual(3);
    expect(sent.filter((s) => s === 'ROLLBACK')).toHaveLength(retries);
    expect(await m('leasepool_connections_closed_total', { reason: 'broken' })).toBe(0);
  });
});

describe('resetOnRelease', () => {
  async function dirtySession(conn: Client): Promise<void> {
    await conn.query("SET application_name = 'lp_dirty'");
    await conn.query("SET lp_test.custom = 'x'");
    await conn.query('CREATE TEMP TABLE pg_tx_temp (id int)');
    await conn.query('PREPARE pg_tx_stmt AS SELECT 1');
  }
  async function sessionState(conn: Client): Promise<{ app: string; custom: string | null; temp: string | null; prepared: number }> {
    const { rows } = await conn.query<{ app: string; custom: string | null; temp: string | null; prepared: number }>(
      `SELECT current_setting('application_name') AS app, current_setting('lp_test.custom', true) AS custom,
              to_regclass('pg_temp.pg_tx_temp')::text AS temp, (SELECT count(*)::int FROM pg_prepared_statements) AS prepared`,
    );
    return rows[0] as { app: string; custom: string | null; temp: string | null; prepared: number };
  }

  test('with DISCARD ALL a session SET (and temp table, prepared statement) is gone for the next lease of that connection', async () => {
    const { pool, m } = makePool({ max: 1, resetOnRelease: true });
    const { pid, clean } = await pool.withLease(async (conn) => {
      const state = await sessionState(conn);
      await dirtySession(conn);
      return { pid: await backendPid(conn), clean: state };
    });
    await pool.withLease(async (conn) => {
      expect(await backendPid(conn)).toBe(pid); // reset, not replaced
      const state = await sessionState(conn);
      expect(state.app).toBe(clean.app);
      expect(state.custom === null || state.custom === '').toBe(true);
      expect(state.temp).toBeNull();
      expect(state.prepared).toBe(0);
    });
    expect(await m('leasepool_connections_closed_total', { reason: 'reset' })).toBe(0);
    expect(await m('leasepool_connections_created_total')).toBe(1);
  });

  test('without resetOnRelease a session changed by SET (or a temp table, a prepared statement) is closed, not handed on', async () => {
    const { pool, m } = makePool({ max: 1 });
    const { pid, clean } = await pool.withLease(async (conn) => {
      const state = await sessionState(conn);
      await dirtySession(conn);
      return { pid: await backendPid(conn), clean: state };
    });
    await pool.withLease(async (conn) => {
      expect(await backendPid(conn)).not.toBe(pid);
      const state = await sessionState(conn);
      expect(state.app).toBe(clean.app);
      expect(state.custom === null || state.custom === '').toBe(true);
      expect(state.temp).toBeNull();
      expect(state.prepared).toBe(0);
    });
    expect(await m('leasepool_connections_closed_total', { reason: 'reset' })).toBe(1);
    // A lease that changed nothing keeps its connection.
    const again = await pool.withLease((conn) => backendPid(conn));
    expect(await pool.withLease((conn) => backendPid(conn))).toBe(again);
  });
});

function makePool(...args: Parameters<typeof pools.make>): ReturnType<typeof pools.make> {
  return pools.make(...args);
}
