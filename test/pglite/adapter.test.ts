/**
 * The PGlite adapter against a real PGlite (PostgreSQL in WASM). Adapter level only: no pool.
 * One shared user-passed instance for most tests (the first instance costs ~3 s and ~700 MiB),
 * plus one adapter-owned instance for the lazy-create / close-on-last-close lifecycle.
 * Tables are prefixed `pglite_adapter_`.
 */
import { PGlite } from '@electric-sql/pglite';
import { PgliteConnection, pgliteAdapter } from '../../adapters/pglite';
import type { Adapter, ConnectionEvents } from '../../src/adapter';
import { ConfigError, ConnectError } from '../../src/errors';
import { createPool } from '../../src';

let db: PGlite;
let adapter: Adapter<PgliteConnection>;
const opened: { adapter: Adapter<PgliteConnection>; conn: PgliteConnection }[] = [];

function events(): ConnectionEvents & { onError: jest.Mock } {
  return { onError: jest.fn() };
}

async function connect(a: Adapter<PgliteConnection> = adapter): Promise<PgliteConnection> {
  const conn = await a.connect(AbortSignal.timeout(20_000), events());
  opened.push({ adapter: a, conn });
  return conn;
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  db = await PGlite.create();
  adapter = pgliteAdapter(db);
  await db.exec('CREATE TABLE pglite_adapter_rows (id int PRIMARY KEY, v int NOT NULL)');
}, 60_000);

beforeEach(async () => {
  await db.exec('TRUNCATE pglite_adapter_rows; INSERT INTO pglite_adapter_rows VALUES (1, 0), (2, 0)');
});

afterEach(async () => {
  for (const { adapter: a, conn } of opened.splice(0)) await a.close(conn);
  // A failed test must not leave the shared session inside a transaction.
  if (!db.closed && db.isInTransaction()) await db.exec('ROLLBACK');
});

afterAll(async () => {
  await db.close();
});

describe('identity and config', () => {
  test('one session: maxConnections 1; name, target; no cancel', () => {
    expect(adapter.name).toBe('pglite');
    expect(adapter.maxConnections).toBe(1);
    expect(adapter.target).toBe('pglite:memory://');
    expect(pgliteAdapter({ dataDir: '/tmp/lp-data' }).target).toBe('pglite:/tmp/lp-data');
    expect(adapter.cancel).toBeUndefined();
    expect(adapter.statementMethods).toEqual(['query', 'exec']);
  });

  test('bad options are a ConfigError', () => {
    expect(() => pgliteAdapter({ dataDir: 5 as unknown as string })).toThrow(ConfigError);
    expect(() => pgliteAdapter('memory://' as never)).toThrow(ConfigError);
  });

  test('the dialect is PostgreSQL’s', () => {
    expect(adapter.sql.begin({ isolation: 'serializable', readOnly: true, deferrable: true })).toEqual([
      'BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE',
    ]);
    expect(adapter.sql.savepoint('lp_sp_1')).toBe('SAVEPOINT lp_sp_1');
    expect(adapter.sql.releaseSavepoint('lp_sp_1')).toBe('RELEASE SAVEPOINT lp_sp_1');
    expect(adapter.sql.rollbackToSavepoint('lp_sp_1')).toBe('ROLLBACK TO SAVEPOINT lp_sp_1');
    expect(() => adapter.sql.savepoint('x; DROP TABLE y')).toThrow(ConfigError);
  });
});

describe('connections over a user-passed instance', () => {
  test('query and exec behave like PGlite’s own; validate; exec through the adapter', async () => {
    const conn = await connect();
    expect(conn).toBeInstanceOf(PgliteConnection);
    expect(conn.pglite).toBe(db);
    const r = await conn.query<{ x: number }>('SELECT $1::int AS x', [41]);
    expect(r.rows).toEqual([{ x: 41 }]);
    expect(r.fields).toEqual([{ name: 'x', dataTypeID: 23 }]);
    const upd = await conn.query('UPDATE pglite_adapter_rows SET v = v + 1');
    expect(upd.affectedRows).toBe(2);
    const many = await conn.exec('SELECT 1 AS a; SELECT 2 AS b');
    expect(many.map((m) => m.rows)).toEqual([[{ a: 1 }], [{ b: 2 }]]);
    await adapter.validate(conn);
    await adapter.exec(conn, 'SELECT 1');
  });

  test('close ends the handle, never the user’s instance; a new connection works', async () => {
    const conn = await adapter.connect(AbortSignal.timeout(5000), events());
    await adapter.close(conn);
    await adapter.close(conn); // idempotent
    expect(conn.closed).toBe(true);
    expect(db.closed).toBe(false);
    const err = await rejectionOf(conn.query('SELECT 1'));
    expect(adapter.isFatal(err)).toBe(true);
    expect(adapter.txStatus?.(conn)).toBe('unknown');
    const again = await connect();
    expect((await again.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  test('an already aborted signal rejects with ConnectError', async () => {
    const controller = new AbortController();
    controller.abort(new Error('going away'));
    const err = await rejectionOf(adapter.connect(controller.signal, events()));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as Error).message).toContain('going away');
  });

  test('txStatus: BEGIN → in_tx, failing statement → failed, ROLLBACK → idle', async () => {
    const conn = await connect();
    expect(adapter.txStatus?.(conn)).toBe('idle');
    await conn.query('BEGIN');
    expect(adapter.txStatus?.(conn)).toBe('in_tx');
    const err = await rejectionOf(conn.query('SELECT 1/0'));
    expect((err as { code?: string }).code).toBe('22012');
    expect(adapter.isFatal(err)).toBe(false);
    expect(adapter.isRetryable(err)).toBe(false);
    expect(adapter.txStatus?.(conn)).toBe('failed');
    await conn.query('ROLLBACK');
    expect(adapter.txStatus?.(conn)).toBe('idle');
  });

  test('savepoint statements: failed → ROLLBACK TO → in_tx; only the inner work is undone', async () => {
    const conn = await connect();
    const sql = adapter.sql;
    for (const s of sql.begin({ isolation: 'serializable' })) await adapter.exec(conn, s);
    await conn.query('UPDATE pglite_adapter_rows SET v = 10 WHERE id = 1');
    await adapter.exec(conn, sql.savepoint('lp_sp_1'));
    await conn.query('UPDATE pglite_adapter_rows SET v = 20 WHERE id = 2');
    await rejectionOf(conn.query('SELECT 1/0'));
    expect(adapter.txStatus?.(conn)).toBe('failed');
    await adapter.exec(conn, sql.rollbackToSavepoint('lp_sp_1'));
    expect(adapter.txStatus?.(conn)).toBe('in_tx');
    await adapter.exec(conn, sql.releaseSavepoint('lp_sp_1'));
    await adapter.exec(conn, sql.commit);
    expect(adapter.txStatus?.(conn)).toBe('idle');
    expect((await conn.query('SELECT id, v FROM pglite_adapter_rows ORDER BY id')).rows).toEqual([
      { id: 1, v: 10 },
      { id: 2, v: 0 },
    ]);
  });

  test('every BEGIN the dialect can build runs on PGlite with the requested characteristics', async () => {
    const conn = await connect();
    for (const isolation of ['read uncommitted', 'read committed', 'repeatable read', 'serializable'] as const) {
      for (const readOnly of [undefined, true, false]) {
        for (const deferrable of [undefined, true, false]) {
          for (const s of adapter.sql.begin({ isolation, readOnly, deferrable })) await adapter.exec(conn, s);
          const r = await conn.query(
            `SELECT current_setting('transaction_isolation') AS iso,
                    current_setting('transaction_read_only') AS ro,
                    current_setting('transaction_deferrable') AS def`,
          );
          expect(r.rows[0]).toEqual({ iso: isolation, ro: readOnly === true ? 'on' : 'off', def: deferrable === true ? 'on' : 'off' });
          await adapter.exec(conn, adapter.sql.rollback);
        }
      }
    }
  });

  test('retryable: SQLSTATE 40001 / 40P01 raised by the engine (code on the PGlite error)', async () => {
    // One session cannot conflict with itself; the engine raises the real SQLSTATEs on request.
    const conn = await connect();
    for (const [condition, code] of [
      ['serialization_failure', '40001'],
      ['deadlock_detected', '40P01'],
    ] as const) {
      const err = await rejectionOf(conn.exec(`DO $$ BEGIN RAISE EXCEPTION 'lp' USING ERRCODE = '${condition}'; END $$`));
      expect((err as { code?: string }).code).toBe(code);
      expect(adapter.isRetryable(err)).toBe(true);
      expect(adapter.isFatal(err)).toBe(false);
    }
    const other = await rejectionOf(conn.query('SELECT * FROM pglite_adapter_missing'));
    expect((other as { code?: string }).code).toBe('42P01');
    expect(adapter.isRetryable(other)).toBe(false);
  });

  test('reset runs DISCARD ALL: SET values and temp tables are gone', async () => {
    const conn = await connect();
    await conn.exec(`SET application_name = 'pglite_adapter_reset'; CREATE TEMP TABLE pglite_adapter_tmp (x int)`);
    await adapter.reset?.(conn);
    expect((await conn.query('SHOW application_name')).rows).toEqual([{ application_name: '' }]);
    expect((await conn.query(`SELECT to_regclass('pg_temp.pglite_adapter_tmp') AS t`)).rows).toEqual([{ t: null }]);
  });

  test('fatal classification by shape', () => {
    expect(adapter.isFatal(new Error('PGlite is closed'))).toBe(true);
    expect(adapter.isFatal(new Error('PGlite is closing'))).toBe(true);
    expect(adapter.isFatal(Object.assign(new Error('unreachable'), { name: 'RuntimeError' }))).toBe(true);
    expect(adapter.isFatal(new Error('Aborted(). Build with -sASSERTIONS for more info.'))).toBe(true);
    expect(adapter.isFatal(Object.assign(new Error('x'), { code: '57P01' }))).toBe(true);
    expect(adapter.isFatal(Object.assign(new Error('x'), { code: '23505' }))).toBe(false);
    expect(adapter.isFatal(undefined)).toBe(false);
  });
});

describe('an adapter-owned instance', () => {
  test('created lazily on first connect (abort honoured meanwhile), shared, kept past its last connection, closed by dispose', async () => {
    const owned = pgliteAdapter();
    // Starting PGlite takes seconds: a short deadline rejects at once, the start-up goes on.
    const started = Date.now();
    const err = await rejectionOf(owned.connect(AbortSignal.timeout(50), events()));
    expect(err).toBeInstanceOf(ConnectError);
    expect(Date.now() - started).toBeLessThan(1000);

    const a = await owned.connect(AbortSignal.timeout(20_000), events());
    const b = await owned.connect(AbortSignal.timeout(20_000), events());
    const instance = a.pglite;
    expect(instance).toBeInstanceOf(PGlite);
    expect(b.pglite).toBe(instance); // one session, shared
    expect(instance).not.toBe(db);
    await a.query('CREATE TABLE pglite_adapter_owned (x int)');
    expect((await b.query('SELECT count(*)::int AS n FROM pglite_adapter_owned')).rows).toEqual([{ n: 0 }]);

    await owned.close(a);
    expect(instance.closed).toBe(false); // b still open
    await owned.close(b);
    expect(instance.closed).toBe(false); // an in-memory database keeps its data while the pool lives
    const c = await owned.connect(AbortSignal.timeout(20_000), events());
    expect(c.pglite).toBe(instance);
    expect((await c.query('SELECT count(*)::int AS n FROM pglite_adapter_owned')).rows).toEqual([{ n: 0 }]);
    await owned.close(c);
    await owned.dispose?.();
    expect(instance.closed).toBe(true); // we created it, pool.close() (dispose) closes it

    const err2 = await rejectionOf(instance.query('SELECT 1'));
    expect(owned.isFatal(err2)).toBe(true);
    expect(owned.txStatus?.(b)).toBe('unknown');
  }, 60_000);
});

describe('the event loop', () => {
  test('a tight loop of transactions still lets timers run (PGlite does no I/O of its own)', async () => {
    const pool = createPool(pgliteAdapter(db), { name: 'pglite_turns', max: 1, leakDetectionMs: 0 });
    try {
      let fired = false;
      setTimeout(() => (fired = true), 20);
      const giveUpAt = Date.now() + 1_000;
      let transactions = 0;
      while (!fired && Date.now() < giveUpAt) {
        await pool.withTx((conn) => conn.query('SELECT 1'));
        transactions++;
      }
      expect(fired).toBe(true);
      expect(transactions).toBeGreaterThan(0);
    } finally {
      await pool.close();
    }
  });
});
