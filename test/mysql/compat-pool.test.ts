/**
 * The drop-in `createPool` of `leasepool/adapters/mysql2` against a real MariaDB/MySQL, side by side
 * with mysql2's own promise pool where the behaviour is meant to be the same, and alone where
 * leasepool deliberately differs (docs/migration-from-mysql2.md).
 * Tables are prefixed `mysql_compat_`; the password user is `lp_compat_user`.
 */
import { once } from 'node:events';
import * as net from 'node:net';
import { inspect } from 'node:util';
import { createConnection, createPool as createMysql2Pool } from 'mysql2/promise';
import type { Connection, Pool as Mysql2Pool, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { Registry } from 'prom-client';

import { createPool, MYSQL2_MESSAGES, type Pool, type PoolOptions } from '../../adapters/mysql2';
import type { LeakEvent } from '../../src';
import { captureLogger, blackhole, delay, metric, rejection, siteOf, topSite, waitFor } from '../helpers/lifecycle';

const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const server = new URL(MYSQL_URL);
const HOST = server.hostname;
const PORT = server.port === '' ? 3306 : Number(server.port);
const DB = decodeURIComponent(server.pathname.slice(1));

const ROWS = 'mysql_compat_rows';
const PW_USER = 'lp_compat_user';
const USER_HOSTS = ['%', '127.0.0.1', 'localhost'];
const PASSWORD = 'C0mpat-Right/p@ss:word#';
const WRONG = 'Wr0ng-C0mpat-S3cret/:@#';

type AppModule = typeof import('./fixtures/app-on-mysql2-pool');

let admin: Connection;
const facades: Pool[] = [];
const natives: Mysql2Pool[] = [];

/** A drop-in pool on the test server; ended after the test. */
function facade(options: PoolOptions = {}): Pool {
  const { leasepool, ...rest } = options;
  // Quiet by default (connect failures are logged as warnings); tests that read the log pass their own.
  const pool = createPool({ uri: MYSQL_URL, ...rest, leasepool: { leakDetectionMs: 0, endTimeoutMs: 500, logger: captureLogger().logger, ...leasepool } });
  facades.push(pool);
  return pool;
}

/** mysql2's own promise pool with the same options, for side-by-side comparisons. */
function native(options: Record<string, unknown> = {}): Mysql2Pool {
  const pool = createMysql2Pool({ uri: MYSQL_URL, ...options });
  natives.push(pool);
  return pool;
}

async function alive(ids: readonly number[]): Promise<number> {
  if (ids.length === 0) return 0;
  const [rows] = await admin.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID IN (?)', [ids]);
  return Number(rows[0]?.n);
}

/** Everything reachable from an error, hidden fields and cause included. */
function everything(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  return [
    inspect(err, { showHidden: true, depth: 6 }),
    String((err as Error).message),
    String((err as Error).stack),
    String((cause as Error | undefined)?.message),
    String((cause as Error | undefined)?.stack),
    JSON.stringify(err, Object.getOwnPropertyNames(err)),
  ].join('\n');
}

/**
 * The fixture module, loaded in an isolated module registry. For `'leasepool'` the module id
 * `mysql2/promise` is mapped to `leasepool/adapters/mysql2` (this repository's adapters/mysql2.ts)
 * for that load only: the fixture's own `import { createPool } from 'mysql2/promise'` then gets the
 * drop-in, exactly as if its import line had been edited, and nothing else is touched.
 */
function loadApp(on: 'mysql2' | 'leasepool'): AppModule {
  let loaded: AppModule | undefined;
  jest.isolateModules(() => {
    if (on === 'leasepool') jest.doMock('mysql2/promise', () => jest.requireActual('../../adapters/mysql2'));
    loaded = require('./fixtures/app-on-mysql2-pool') as AppModule;
  });
  jest.dontMock('mysql2/promise');
  if (loaded === undefined) throw new Error('fixture did not load');
  return loaded;
}

beforeAll(async () => {
  admin = await createConnection(MYSQL_URL);
  admin.on('error', () => undefined);
  await admin.query(`DROP TABLE IF EXISTS ${ROWS}`);
  await admin.query(`CREATE TABLE ${ROWS} (id INT AUTO_INCREMENT PRIMARY KEY, tag VARCHAR(64) NOT NULL) ENGINE=InnoDB`);
});

afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${ROWS}`);
  for (const host of USER_HOSTS) await admin.query(`DROP USER IF EXISTS '${PW_USER}'@'${host}'`);
  await admin.end();
});

afterEach(async () => {
  await Promise.all([
    ...facades.splice(0).map((p) => p.end()),
    ...natives.splice(0).map((p) => p.end().catch(() => undefined)),
  ]);
});

// ---------------------------------------------------------------------------------------------

describe('an application written for mysql2/promise, with only its import changed', () => {
  async function scenario(app: AppModule, table: string): Promise<Record<string, unknown>> {
    const bank = app.createBank(MYSQL_URL, table, 3);
    try {
      await bank.setup();
      const ids = [await bank.open('alice', 100), await bank.open('bob', 50), await bank.open('carol', 0)];
      const [a, b, c] = ids as [number, number, number];
      const opened = await bank.balances();
      // Concurrent transfers on a pool of 3 (callers queue); no cycle in the lock order, so no deadlock.
      await Promise.all([
        ...Array.from({ length: 5 }, () => bank.transfer(a, b, 10)),
        ...Array.from({ length: 3 }, () => bank.transfer(b, c, 5)),
      ]);
      const insufficient = await rejection(bank.transfer(c, a, 1_000));
      const duplicate = (await rejection(bank.open('alice', 1))) as { code?: unknown; errno?: unknown; sqlState?: unknown; sqlMessage?: unknown };
      const parse = (await rejection(bank.pool.query('SELEKT 1'))) as { code?: unknown; errno?: unknown };
      return {
        ids,
        opened,
        afterTransfers: await bank.balances(),
        balanceOfBob: await bank.balance(b),
        insufficient: { name: (insufficient as Error).name, isAppError: insufficient instanceof app.InsufficientFunds, message: (insufficient as Error).message },
        duplicate: { code: duplicate.code, errno: duplicate.errno, sqlState: duplicate.sqlState, sqlMessage: duplicate.sqlMessage },
        parse: { code: parse.code, errno: parse.errno },
        inTransaction: await bank.inTransaction(),
        escaped: bank.pool.escape(["it's", 1, null, new Date(Date.UTC(2024, 0, 2, 3, 4, 5))]),
        formatted: bank.pool.format('SELECT ?? FROM t WHERE a = ? AND b IN (?)', ['col', 'x', [1, 2]]),
      };
    } finally {
      await admin.query(`DROP TABLE IF EXISTS ${table}`);
      await bank.close();
    }
  }

  test('the same workload gives identical observable results on mysql2 and on the drop-in', async () => {
    const real = await scenario(loadApp('mysql2'), 'mysql_compat_app_real');
    const dropIn = await scenario(loadApp('leasepool'), 'mysql_compat_app_dropin');
    expect(real.afterTransfers).toEqual([
      { id: 1, owner: 'alice', balance: 50 },
      { id: 2, owner: 'bob', balance: 85 },
      { id: 3, owner: 'carol', balance: 15 },
    ]);
    expect((real.duplicate as { code: unknown }).code).toBe('ER_DUP_ENTRY');
    expect(dropIn).toEqual(real);
  });

  test('the loaded fixture really runs on the drop-in (its pool is leasepool-backed) and on mysql2 otherwise', async () => {
    const onDropIn = loadApp('leasepool').createBank(MYSQL_URL, 'mysql_compat_app_probe', 1);
    const onMysql2 = loadApp('mysql2').createBank(MYSQL_URL, 'mysql_compat_app_probe', 1);
    try {
      expect(typeof (onDropIn.pool as unknown as Pool).withTx).toBe('function');
      expect((onDropIn.pool as unknown as Pool).stats().max).toBe(1);
      expect((onMysql2.pool as unknown as { withTx?: unknown }).withTx).toBeUndefined();
    } finally {
      await onDropIn.close();
      await onMysql2.close();
    }
  });

  test('a connection released inside a transaction: mysql2 hands it on still open, the drop-in rolls it back', async () => {
    const observe = async (app: AppModule, table: string): Promise<{ inTx: boolean; balances: unknown }> => {
      const bank = app.createBank(MYSQL_URL, table, 1);
      try {
        await bank.setup();
        const a = await bank.open('alice', 100);
        const b = await bank.open('bob', 0);
        await bank.transferAndForget(a, b, 30);
        // With one connection, the next borrower gets the very connection that was released.
        return { inTx: await bank.inTransaction(), balances: (await bank.balances()).map((r) => r.balance) };
      } finally {
        await bank.close();
        await admin.query(`DROP TABLE IF EXISTS ${table}`);
      }
    };
    const real = await observe(loadApp('mysql2'), 'mysql_compat_forget_real');
    const dropIn = await observe(loadApp('leasepool'), 'mysql_compat_forget_dropin');
    expect(real).toEqual({ inTx: true, balances: [70, 30] }); // uncommitted work visible to the next borrower
    expect(dropIn).toEqual({ inTx: false, balances: [100, 0] }); // rolled back at release
  });
});

// ---------------------------------------------------------------------------------------------

describe('pool methods, promise form', () => {
  test('query and execute resolve [rows, fields] exactly like mysql2, with and without values', async () => {
    const ours = facade({ connectionLimit: 2 });
    const theirs = native({ connectionLimit: 2 });
    for (const pool of [ours, theirs] as const) {
      await pool.query(`DELETE FROM ${ROWS} WHERE tag LIKE 'qe-%'`);
    }
    const calls = async (pool: Pool | Mysql2Pool, tag: string): Promise<unknown[]> => {
      const [ins] = await pool.execute<ResultSetHeader>(`INSERT INTO ${ROWS} (tag) VALUES (?), (?)`, [`qe-${tag}-1`, `qe-${tag}-2`]);
      const [rows, fields] = await pool.query<RowDataPacket[]>(`SELECT tag, 1 + ? AS two FROM ${ROWS} WHERE tag LIKE ? ORDER BY id`, [1, `qe-${tag}-%`]);
      const [noValues] = await pool.query<RowDataPacket[]>('SELECT 42 AS answer');
      const [exec] = await pool.execute<RowDataPacket[]>('SELECT ? AS s, ? AS n', ['x', 7]);
      const [asArray] = await pool.query<RowDataPacket[]>({ sql: 'SELECT 1 AS a, 2 AS b', rowsAsArray: true });
      return [
        { affectedRows: ins.affectedRows, warningStatus: ins.warningStatus },
        rows.map((r) => ({ ...r, tag: String(r.tag).replace(tag, '*') })),
        fields.map((f) => f.name),
        noValues,
        exec,
        asArray,
      ];
    };
    expect(await calls(ours, 'ours')).toEqual(await calls(theirs, 'theirs'));

    // A callback is refused synchronously, with mysql2's message.
    const cb = (): void => undefined;
    expect(() => (theirs.query as unknown as (s: string, v: unknown) => unknown)('SELECT 1', cb)).toThrow(MYSQL2_MESSAGES.callback);
    expect(() => (ours.query as unknown as (s: string, v: unknown) => unknown)('SELECT 1', cb)).toThrow(MYSQL2_MESSAGES.callback);
    expect(() => (ours.execute as unknown as (s: string, v: unknown) => unknown)('SELECT 1', cb)).toThrow(MYSQL2_MESSAGES.callback);
    // Server errors reach the caller unchanged.
    const err = (await rejection(ours.execute('SELECT * FROM mysql_compat_no_such_table'))) as { code?: string; errno?: number; sqlState?: string };
    const ref = (await rejection(theirs.execute('SELECT * FROM mysql_compat_no_such_table'))) as { code?: string; errno?: number; sqlState?: string };
    expect({ code: err.code, errno: err.errno, sqlState: err.sqlState }).toEqual({ code: ref.code, errno: ref.errno, sqlState: ref.sqlState });
    expect(err.code).toBe('ER_NO_SUCH_TABLE');
    // The failed statement did not cost a connection.
    expect(ours.stats()).toMatchObject({ active: 0 });
  });

  test('getConnection: the guarded promise connection, transactions, release(), releaseConnection(), end(), asyncDispose', async () => {
    const pool = facade({ connectionLimit: 1 });
    const conn = await pool.getConnection();
    const thread = conn.threadId;
    expect(typeof thread).toBe('number');
    expect(await conn.ping()).toBe(true);
    await conn.beginTransaction();
    await conn.execute(`INSERT INTO ${ROWS} (tag) VALUES (?)`, ['gc-commit']);
    await conn.commit();
    await conn.beginTransaction();
    await conn.query(`INSERT INTO ${ROWS} (tag) VALUES (?)`, ['gc-rollback']);
    await conn.rollback();
    expect(conn.escape("a'b")).toBe("'a\\'b'");
    expect(conn.connection.threadId).toBe(thread); // the core connection, as on mysql2's PoolConnection
    conn.release();
    conn.release(); // a second release is a no-op, as in mysql2
    expect(() => conn.query('SELECT 1')).toThrow(expect.objectContaining({ code: 'LEASE_RELEASED' }));
    expect(pool.stats()).toMatchObject({ size: 1, idle: 1, active: 0 });

    const [rows] = await admin.query<RowDataPacket[]>(`SELECT tag FROM ${ROWS} WHERE tag LIKE 'gc-%' ORDER BY id`);
    expect(rows.map((r) => r.tag)).toEqual(['gc-commit']);

    // releaseConnection(), end() (mysql2: releases, unless gracefulEnd) and Symbol.asyncDispose all give it back.
    const again = await pool.getConnection();
    expect(again.threadId).toBe(thread);
    pool.releaseConnection(again);
    expect(pool.stats()).toMatchObject({ idle: 1, active: 0 });
    const third = await pool.getConnection();
    await third.end();
    expect(pool.stats()).toMatchObject({ size: 1, idle: 1, active: 0 });
    const fourth = await pool.getConnection();
    expect(fourth.threadId).toBe(thread);
    await fourth[Symbol.asyncDispose]();
    expect(pool.stats()).toMatchObject({ size: 1, idle: 1, active: 0 });
  });

  test('connection.destroy() closes the connection: the server session ends, the next getConnection opens a new one', async () => {
    const pool = facade({ connectionLimit: 1 });
    const released: number[] = [];
    pool.on('release', (c) => released.push(c.threadId));
    const conn = await pool.getConnection();
    const thread = conn.threadId;
    conn.destroy();
    conn.release(); // after destroy(): a no-op, as in mysql2
    await waitFor('the destroyed session is gone', async () => (await alive([thread])) === 0);
    const next = await pool.getConnection();
    const nextThread = next.threadId;
    expect(nextThread).not.toBe(thread);
    next.release();
    expect(released).toEqual([nextThread]); // no 'release' for the destroyed one, as in mysql2
  });

  test('with gracefulEnd, connection.end() closes the connection instead of releasing it (as in mysql2)', async () => {
    const pool = facade({ connectionLimit: 1, gracefulEnd: true });
    const conn = await pool.getConnection();
    const thread = conn.threadId;
    await conn.end();
    await waitFor('the ended session is gone', async () => (await alive([thread])) === 0);
    const [rows] = await pool.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    expect(Number(rows[0]?.id)).not.toBe(thread);
  });

  test('escape, escapeId and format give what mysql2 gives, honouring stringifyObjects and timezone', async () => {
    for (const options of [{}, { timezone: '+02:00', stringifyObjects: true }, { timezone: ' 05:30' }, { timezone: 'Z' }]) {
      const ours = facade(options);
      const theirs = native(options);
      const values: unknown[] = [
        "it's \\ \"quoted\"",
        42,
        null,
        undefined,
        true,
        new Date(Date.UTC(2024, 5, 1, 12, 30, 0, 123)),
        Buffer.from('hi'),
        [1, 'a', [2, 3]],
        { a: 1, b: 'x' },
      ];
      for (const value of values) expect(ours.escape(value)).toBe(theirs.escape(value));
      for (const id of ['col', 'tbl.col', 'we`ird', ['a', 'b.c']]) {
        expect(ours.escapeId(id as string)).toBe(theirs.escapeId(id as string));
      }
      const sql = 'SELECT ?? FROM ?? WHERE a = ? AND b IN (?) AND c = ?';
      const args = [['x', 'y'], 'db.t', "o'k", [1, 2], new Date(Date.UTC(2020, 0, 1))];
      expect(ours.format(sql, args)).toBe(theirs.format(sql, args));
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('events', () => {
  /** Event names with connections labelled c1, c2 … in order of appearance (thread ids differ between pools). */
  function record(pool: Pool | Mysql2Pool): string[] {
    const trace: string[] = [];
    const labels = new Map<number, string>();
    const label = (c: { threadId: number | null }): string => {
      const id = Number(c.threadId);
      if (!labels.has(id)) labels.set(id, `c${labels.size + 1}`);
      return labels.get(id) as string;
    };
    const emitter = pool as unknown as { on(event: string, listener: (c?: { threadId: number | null }) => void): unknown };
    for (const event of ['connection', 'acquire', 'release']) emitter.on(event, (c) => trace.push(`${event} ${label(c as { threadId: number })}`));
    emitter.on('enqueue', () => trace.push('enqueue'));
    return trace;
  }

  async function uncontended(pool: Pool | Mysql2Pool): Promise<void> {
    const c1 = await pool.getConnection();
    c1.release();
    await pool.query('SELECT 1');
    await pool.execute('SELECT 1');
    const c2 = await pool.getConnection();
    const c3 = await pool.getConnection();
    c2.release();
    c3.release();
    await new Promise((resolve) => setImmediate(resolve));
  }

  test('without contention, the drop-in emits the same events in the same order as mysql2', async () => {
    const ours = facade({ connectionLimit: 2 });
    const theirs = native({ connectionLimit: 2 });
    const ourTrace = record(ours);
    const theirTrace = record(theirs);
    await uncontended(ours);
    await uncontended(theirs);
    expect(theirTrace).toEqual([
      'connection c1',
      'acquire c1',
      'release c1',
      'acquire c1',
      'release c1',
      'acquire c1',
      'release c1',
      'acquire c1',
      'connection c2',
      'acquire c2',
      'release c1',
      'release c2',
    ]);
    expect(ourTrace).toEqual(theirTrace);
  });

  test('payloads are the core connection (threadId, callback API), as in mysql2; enqueue has none', async () => {
    const pool = facade({ connectionLimit: 1 });
    const reference = native({ connectionLimit: 1 });
    const payloads: Array<{ event: string; threadId: number; hasPromise: boolean; args: number }> = [];
    for (const [name, p] of [['ours', pool], ['theirs', reference]] as const) {
      for (const event of ['connection', 'acquire', 'release', 'enqueue'] as const) {
        (p as unknown as { on(e: string, l: (...a: unknown[]) => void): void }).on(event, (...args: unknown[]) => {
          const c = args[0] as { threadId?: number; promise?: unknown } | undefined;
          payloads.push({ event: `${name} ${event}`, threadId: Number(c?.threadId ?? -1), hasPromise: typeof c?.promise === 'function', args: args.length });
        });
      }
    }
    for (const p of [pool, reference] as const) {
      const held = await p.getConnection();
      const waiting = p.getConnection();
      await new Promise((resolve) => setImmediate(resolve));
      held.release();
      (await waiting).release();
    }
    const ours = payloads.filter((p) => p.event.startsWith('ours'));
    const theirs = payloads.filter((p) => p.event.startsWith('theirs'));
    for (const list of [ours, theirs]) {
      for (const p of list) {
        if (p.event.endsWith('enqueue')) expect(p).toMatchObject({ args: 0 });
        else expect(p).toMatchObject({ hasPromise: true, args: 1 });
        if (!p.event.endsWith('enqueue')) expect(p.threadId).toBeGreaterThan(0);
      }
      expect(list.filter((p) => p.event.endsWith('enqueue'))).toHaveLength(1);
      expect(list.filter((p) => p.event.endsWith('connection'))).toHaveLength(1);
    }
    // Deliberate difference: mysql2 hands a released connection straight to a waiter with neither
    // 'release' nor 'acquire'; the drop-in reports both, so acquires and releases always pair up.
    expect(ours.map((p) => p.event.replace('ours ', ''))).toEqual(['connection', 'acquire', 'enqueue', 'release', 'acquire', 'release']);
    expect(theirs.map((p) => p.event.replace('theirs ', ''))).toEqual(['connection', 'acquire', 'enqueue', 'release']);
  });

  test('events are forwarded from the core only while someone listens', async () => {
    const pool = facade({ connectionLimit: 1 });
    const core = pool.leasepool;
    expect(core.listenerCount('enqueue')).toBe(0);
    expect(core.listenerCount('error')).toBe(0);
    const listener = (): void => undefined;
    pool.on('enqueue', listener);
    pool.on('enqueue', listener);
    pool.on('error', listener);
    expect(core.listenerCount('enqueue')).toBe(1);
    expect(core.listenerCount('error')).toBe(1);
    pool.off('enqueue', listener);
    expect(core.listenerCount('enqueue')).toBe(1);
    pool.off('enqueue', listener);
    pool.off('error', listener);
    expect(core.listenerCount('enqueue')).toBe(0);
    expect(core.listenerCount('error')).toBe(0);
  });

  test('a throwing listener does not break the pool: it is logged', async () => {
    const { logger, entries } = captureLogger();
    const pool = facade({ connectionLimit: 1, leasepool: { logger } });
    pool.on('acquire', () => {
      throw new Error('listener bug');
    });
    const [rows] = await pool.query<RowDataPacket[]>('SELECT 1 AS one');
    expect(rows).toEqual([{ one: 1 }]);
    expect(entries.some((e) => e.level === 'error' && e.msg.includes("'acquire' listener threw: listener bug"))).toBe(true);
    expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
  });
});

// ---------------------------------------------------------------------------------------------

describe('limits', () => {
  test('counts: mysql2 exposes none publicly; stats() reports what its private lists hold', async () => {
    const ours = facade({ connectionLimit: 3 });
    const theirs = native({ connectionLimit: 3 });
    const held = [await ours.getConnection(), await ours.getConnection()];
    const heldTheirs = [await theirs.getConnection(), await theirs.getConnection()];
    held[0]?.release();
    heldTheirs[0]?.release();
    const core = (theirs as unknown as { pool: { _allConnections: { length: number }; _freeConnections: { length: number } } }).pool;
    expect(ours.stats()).toMatchObject({ size: core._allConnections.length, idle: core._freeConnections.length, active: 1, max: 3, pending: 0 });
    held[1]?.release();
    heldTheirs[1]?.release();
  });

  test('queueLimit: the first caller past the limit fails at once with mysql2 message; the queued one is served', async () => {
    const ours = facade({ connectionLimit: 1, queueLimit: 1 });
    const theirs = native({ connectionLimit: 1, queueLimit: 1 });
    for (const pool of [ours, theirs] as const) {
      const held = await pool.getConnection();
      const queued = pool.getConnection();
      const refused = (await rejection(pool.getConnection())) as Error;
      expect(refused.message).toBe(MYSQL2_MESSAGES.queueLimit);
      held.release();
      (await queued).release();
    }
    const held = await ours.getConnection();
    const queued = ours.getConnection();
    const viaQuery = (await rejection(ours.query('SELECT 1'))) as Error & { code?: string };
    expect(viaQuery).toMatchObject({ message: MYSQL2_MESSAGES.queueLimit, code: 'POOL_QUEUE_FULL' });
    expect(viaQuery.stack?.split('\n')[0]).toBe(`PoolQueueFullError: ${MYSQL2_MESSAGES.queueLimit}`);
    held.release();
    (await queued).release();
  });

  test('waitForConnections: false fails at once when none is free, with mysql2 message', async () => {
    const ours = facade({ connectionLimit: 1, waitForConnections: false });
    const theirs = native({ connectionLimit: 1, waitForConnections: false });
    for (const pool of [ours, theirs] as const) {
      const held = await pool.getConnection();
      const started = Date.now();
      const refused = (await rejection(pool.getConnection())) as Error;
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(refused.message).toBe(MYSQL2_MESSAGES.noConnections);
      expect(((await rejection(pool.query('SELECT 1'))) as Error).message).toBe(MYSQL2_MESSAGES.noConnections);
      held.release();
      const [rows] = await pool.query<RowDataPacket[]>('SELECT 2 AS two');
      expect(rows).toEqual([{ two: 2 }]);
    }
    const held = await ours.getConnection();
    expect(await rejection(ours.getConnection())).toMatchObject({ code: 'POOL_QUEUE_FULL', name: 'PoolQueueFullError' });
    held.release();
  });

  test('idleTimeout with maxIdle < connectionLimit closes idle connections (mysql2 does the same, on a 1 s tick)', async () => {
    const run = async (pool: Pool | Mysql2Pool): Promise<number[]> => {
      const conns = await Promise.all([pool.getConnection(), pool.getConnection(), pool.getConnection()]);
      const ids = conns.map((c) => c.threadId);
      for (const c of conns) c.release();
      expect(await alive(ids)).toBe(3);
      return ids;
    };
    const ours = facade({ connectionLimit: 3, maxIdle: 1, idleTimeout: 200 });
    const theirs = native({ connectionLimit: 3, maxIdle: 1, idleTimeout: 200 });
    const [ourIds, theirIds] = await Promise.all([run(ours), run(theirs)]);
    await Promise.all([
      waitFor('the drop-in closed its idle connections', async () => (await alive(ourIds)) === 0, 5_000, 50),
      waitFor('mysql2 closed its idle connections', async () => (await alive(theirIds)) === 0, 5_000, 50),
    ]);
    expect(ours.stats()).toMatchObject({ size: 0, idle: 0 });
    // The pool still works: a new connection is opened on demand.
    const [rows] = await ours.query<RowDataPacket[]>('SELECT 1 AS one');
    expect(rows).toEqual([{ one: 1 }]);
  });

  test('with the default maxIdle (= connectionLimit) idle connections are never closed, whatever idleTimeout says (as in mysql2)', async () => {
    const pool = facade({ connectionLimit: 2, idleTimeout: 100 });
    const conns = [await pool.getConnection(), await pool.getConnection()];
    const ids = conns.map((c) => c.threadId);
    for (const c of conns) c.release();
    await delay(800); // 8x idleTimeout: nothing may happen meanwhile
    expect(await alive(ids)).toBe(2);
    expect(pool.stats()).toMatchObject({ size: 2, idle: 2 });
  });

  test('connectionLimit bounds the connections opened under load; they are opened on demand, not up front', async () => {
    const opened: number[] = [];
    const pool = facade({ connectionLimit: 3 });
    pool.on('connection', (c) => opened.push(Number(c.threadId)));
    await delay(50);
    expect(pool.stats().size).toBe(0);
    await Promise.all(Array.from({ length: 12 }, (_, i) => pool.query('SELECT SLEEP(0.02), ? AS i', [i])));
    expect(opened.length).toBeLessThanOrEqual(3);
    expect(pool.stats().size).toBeLessThanOrEqual(3);
  });
});

// ---------------------------------------------------------------------------------------------

describe('connect failures', () => {
  test('connectTimeout bounds a connect to a server that never answers (blackhole)', async () => {
    const hole = await blackhole();
    try {
      const pool = facade({ uri: undefined, host: '127.0.0.1', port: hole.port, user: 'root', connectTimeout: 300 });
      const started = Date.now();
      const err = (await rejection(pool.getConnection())) as Error & { code?: string };
      const elapsed = Date.now() - started;
      expect(err).toMatchObject({ name: 'ConnectError', code: 'CONNECT_FAILED' });
      expect(err.message).toMatch(/127\.0\.0\.1:\d+/);
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(3_000);
      expect(await rejection(pool.query('SELECT 1'))).toMatchObject({ code: 'CONNECT_FAILED' });
      // The half-open sockets were closed by the client, none left behind.
      await waitFor('the client closed every socket it opened', () => hole.sockets.length > 0 && hole.sockets.every((s) => hole.closed.has(s)));
      expect(pool.stats()).toMatchObject({ size: 0, active: 0 });
    } finally {
      await hole.close();
    }
  });

  test('an unreachable server (refused port, unknown host) fails fast with ConnectError, the driver code in its cause', async () => {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const refused = facade({ uri: undefined, host: '127.0.0.1', port, user: 'root', connectTimeout: 2_000 });
    const started = Date.now();
    const err = (await rejection(refused.getConnection())) as Error & { cause?: { code?: string } };
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(err).toMatchObject({ name: 'ConnectError', code: 'CONNECT_FAILED' });
    expect(err.cause?.code).toBe('ECONNREFUSED');

    const unknown = facade({ uri: undefined, host: 'no-such-host.invalid', port: PORT, user: 'root', connectTimeout: 1_500 });
    expect(await rejection(unknown.query('SELECT 1'))).toMatchObject({ name: 'ConnectError', code: 'CONNECT_FAILED' });
  });

  test('a wrong password: ConnectError with the server error as redacted cause; no password anywhere', async () => {
    for (const host of USER_HOSTS) {
      await admin.query(`DROP USER IF EXISTS '${PW_USER}'@'${host}'`);
      await admin.query(`CREATE USER '${PW_USER}'@'${host}' IDENTIFIED BY ?`, [PASSWORD]);
      await admin.query(`GRANT SELECT ON \`${DB}\`.* TO '${PW_USER}'@'${host}'`);
    }
    const right = facade({ uri: undefined, host: HOST, port: PORT, database: DB, user: PW_USER, password: PASSWORD });
    const [rows] = await right.query<RowDataPacket[]>('SELECT CURRENT_USER() AS u');
    expect(String(rows[0]?.u)).toMatch(new RegExp(`^${PW_USER}@`));

    const configs: Array<string | PoolOptions> = [
      { uri: undefined, host: HOST, port: PORT, database: DB, user: PW_USER, password: WRONG },
      { uri: `mysql://${PW_USER}:${encodeURIComponent(WRONG)}@${HOST}:${PORT}/${DB}` },
    ];
    for (const config of configs) {
      const pool = typeof config === 'string' ? createPool(config) : facade(config);
      if (typeof config === 'string') facades.push(pool);
      for (const attempt of [pool.getConnection(), pool.query('SELECT 1'), pool.execute('SELECT 1')]) {
        const err = (await rejection(attempt)) as Error & { cause?: { code?: string; errno?: number } };
        expect(err).toMatchObject({ name: 'ConnectError', code: 'CONNECT_FAILED' });
        expect(err.cause?.code).toBe('ER_ACCESS_DENIED_ERROR');
        expect(err.cause?.errno).toBe(1045);
        expect(err).toMatchObject({ errno: 1045, sqlState: '28000' }); // mysql2's numbers on the error itself, as on mysql2's
        const text = everything(err);
        expect(text).not.toContain(WRONG);
        expect(text).not.toContain(encodeURIComponent(WRONG));
        expect(text).not.toContain('Wr0ng');
        expect(text).not.toContain(PASSWORD);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('recovery and leasepool guarantees', () => {
  test('KILL of an idle pooled connection: no crash, the error is reported, the next query works on a new connection', async () => {
    const { logger, entries } = captureLogger();
    const pool = facade({ connectionLimit: 1, leasepool: { logger } });
    const conn = await pool.getConnection();
    const killed = conn.threadId;
    conn.release();
    await admin.query(`KILL ${Number(killed)}`);
    await waitFor('the pool heard of the killed connection', () => entries.some((e) => e.level === 'error'));
    expect(entries.find((e) => e.level === 'error')?.msg).toMatch(/failed while idle/);
    const [rows] = await pool.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    expect(Number(rows[0]?.id)).not.toBe(killed);

    // With an 'error' listener, the error goes there instead of the log.
    const errors: Error[] = [];
    pool.on('error', (e) => errors.push(e));
    const second = Number(rows[0]?.id);
    const before = entries.length;
    await admin.query(`KILL ${second}`);
    await waitFor("the pool's 'error' listener heard of it", () => errors.length > 0);
    expect(entries.length).toBe(before);
    const [after] = await pool.execute<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    expect(Number(after[0]?.id)).not.toBe(second);
  });

  test("pool.query()'s error carries the stack of the caller's line (mysql2's trace), on the facade as on mysql2", async () => {
    for (const pool of [facade({ connectionLimit: 1 }), native({ connectionLimit: 1 })]) {
      const here = new Error(); const err = (await rejection(pool.query('SELEC 1'))) as Error & { errno?: number };
      expect(err.errno).toBe(1064);
      expect(err.stack?.split('\n')[0]).toBe(`Error: ${err.message}`);
      expect(topSite(err.stack)).toBe(siteOf(here));
    }
  });

  test('with trace: false neither pool captures the caller: the error keeps the driver\'s frames', async () => {
    for (const pool of [facade({ connectionLimit: 1, trace: false }), native({ connectionLimit: 1, trace: false })]) {
      const here = new Error(); const err = (await rejection(pool.query('SELEC 1'))) as Error & { errno?: number };
      expect(err.errno).toBe(1064);
      expect(topSite(err.stack)).not.toBe(siteOf(here));
    }
  });

  test('a transaction opened by pool.query() is seen by the release path: rolled back and counted, never handed on', async () => {
    const registry = new Registry();
    const pool = facade({ connectionLimit: 1, leasepool: { name: 'mysql_compat_raw_tx', metrics: { registry } } });
    await pool.query('START TRANSACTION');
    expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'mysql_compat_raw_tx', kind: 'rollback_on_release' })).toBe(1);
    const [rows] = await pool.query<RowDataPacket[]>(`SELECT @@in_transaction AS open`);
    expect(Number(rows[0]?.open)).toBe(0);
  });

  test('a session made read-only: mysql2 hands it on until a write fails there (then destroys it); the facade closes it at release, so no later write fails', async () => {
    const mysql2 = native({ connectionLimit: 1 });
    await mysql2.query('SET SESSION TRANSACTION READ ONLY');
    const [before] = await mysql2.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    const err = (await rejection(mysql2.query(`INSERT INTO ${ROWS} (tag) VALUES ('ro')`))) as { errno?: number };
    expect(err.errno).toBe(1792);
    const [after] = await mysql2.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    expect(Number(after[0]?.id)).not.toBe(Number(before[0]?.id));

    const pool = facade({ connectionLimit: 1 });
    await pool.query('SET SESSION TRANSACTION READ ONLY');
    await pool.query(`INSERT INTO ${ROWS} (tag) VALUES ('ro-facade')`);
    const [rows] = await pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${ROWS} WHERE tag = 'ro-facade'`);
    expect(Number(rows[0]?.n)).toBe(1);
  });

  test('leak detection reports a held connection with the line that took it, and its return', async () => {
    const { logger, entries } = captureLogger();
    const pool = facade({ connectionLimit: 2, leasepool: { leakDetectionMs: 100, logger } });
    const leaks: LeakEvent[] = [];
    pool.leasepool.on('leak', (e) => leaks.push(e));
    const here = new Error(); const conn = await pool.getConnection();
    await waitFor('the leak report', () => leaks.length === 1);
    expect(topSite(leaks[0]?.stack)).toBe(siteOf(here));
    expect(leaks[0]?.stack).not.toMatch(/[\\/](src|adapters)[\\/][\w-]+\.ts/);
    expect(entries.some((e) => e.level === 'warn' && e.msg.includes('possible leak') && e.msg.includes(siteOf(here)))).toBe(true);
    conn.release();
    await waitFor('the return report', () => entries.some((e) => e.msg.includes('was returned after')));

    // Through pool.query too: the statement's own line is reported.
    const slow = new Error(); const running = pool.query('SELECT SLEEP(0.4)');
    await waitFor('the second leak report', () => leaks.length === 2);
    expect(topSite(leaks[1]?.stack)).toBe(siteOf(slow));
    await running;
  });

  test('leaseTimeoutMs takes a held connection back: rolled back, closed, further use throws', async () => {
    const pool = facade({ connectionLimit: 1, leasepool: { leaseTimeoutMs: 200, logger: captureLogger().logger } });
    const conn = await pool.getConnection();
    const thread = conn.threadId;
    await conn.beginTransaction();
    await conn.query(`INSERT INTO ${ROWS} (tag) VALUES ('lease-timeout')`);
    await waitFor('the lease is revoked', () => pool.leasepool.stats().active === 0);
    expect(() => conn.query('SELECT 1')).toThrow(expect.objectContaining({ code: 'LEASE_REVOKED' }));
    conn.release(); // no-op
    await waitFor('the session is closed', async () => (await alive([thread])) === 0);
    const [rows] = await admin.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${ROWS} WHERE tag = 'lease-timeout'`);
    expect(Number(rows[0]?.n)).toBe(0);
  });

  test('pool.withTx: commit, rollback on throw, and pool.query/execute inside join the transaction', async () => {
    const pool = facade({ connectionLimit: 2 });
    const committed = await pool.withTx(async (conn) => {
      const [[mine]] = await conn.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
      const [[viaPool]] = await pool.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id, @@in_transaction AS t');
      await pool.execute(`INSERT INTO ${ROWS} (tag) VALUES (?)`, ['tx-commit']);
      return { same: mine?.id === viaPool?.id, inTx: Number(viaPool?.t) };
    });
    expect(committed).toEqual({ same: true, inTx: 1 });

    const boom = new Error('boom');
    const err = await rejection(
      pool.withTx(async () => {
        await pool.query(`INSERT INTO ${ROWS} (tag) VALUES (?)`, ['tx-rollback']);
        await pool.withTx(async () => {
          await pool.execute(`INSERT INTO ${ROWS} (tag) VALUES (?)`, ['tx-nested']);
        });
        throw boom;
      }),
    );
    expect(err).toBe(boom);
    const [rows] = await admin.query<RowDataPacket[]>(`SELECT tag FROM ${ROWS} WHERE tag LIKE 'tx-%' ORDER BY id`);
    expect(rows.map((r) => r.tag)).toEqual(['tx-commit']);
    expect(pool.stats()).toMatchObject({ active: 0 });
  });

  test('getConnection() inside withTx on a full pool fails with NestedAcquireError instead of deadlocking', async () => {
    const pool = facade({ connectionLimit: 1 });
    const err = await rejection(pool.withTx(async () => pool.getConnection()));
    expect(err).toMatchObject({ code: 'NESTED_ACQUIRE' });
    expect(pool.stats()).toMatchObject({ active: 0, pending: 0 });
  });

  test('metrics go to the registry passed under leasepool.metrics', async () => {
    const registry = new Registry();
    const pool = facade({ connectionLimit: 1, leasepool: { name: 'mysql_compat_metrics', metrics: { registry } } });
    await pool.query('SELECT 1');
    await pool.execute('SELECT 1');
    const conn = await pool.getConnection();
    await conn.beginTransaction();
    conn.release();
    await waitFor('the rollback at release', async () => (await metric(registry, 'leasepool_recoveries_total', { pool: 'mysql_compat_metrics', kind: 'rollback_on_release' })) === 1);
    expect(await metric(registry, 'leasepool_acquires_total', { pool: 'mysql_compat_metrics', outcome: 'success' })).toBe(3);
    expect(await metric(registry, 'leasepool_connections_created_total', { pool: 'mysql_compat_metrics' })).toBe(1);
  });

  test('end() waits for a held connection until its deadline; new requests fail with mysql2 message meanwhile and after', async () => {
    const pool = facade({ connectionLimit: 1, leasepool: { endTimeoutMs: 5_000 } });
    const held = await pool.getConnection();
    const waiter = pool.getConnection();
    const ended = pool.end();
    expect(await rejection(waiter)).toMatchObject({ message: MYSQL2_MESSAGES.closed, code: 'POOL_CLOSED' });
    expect(await rejection(pool.getConnection())).toMatchObject({ message: MYSQL2_MESSAGES.closed });
    expect(await rejection(pool.query('SELECT 1'))).toMatchObject({ message: MYSQL2_MESSAGES.closed });
    const [rows] = await held.query<RowDataPacket[]>('SELECT 1 AS still'); // the holder finishes its work
    expect(rows).toEqual([{ still: 1 }]);
    const thread = held.threadId;
    held.release();
    await ended;
    expect(await alive([thread])).toBe(0);
    await pool.end(); // a second end() is fine

    const theirs = native({ connectionLimit: 1 });
    await theirs.end();
    expect(((await rejection(theirs.getConnection())) as Error).message).toBe(MYSQL2_MESSAGES.closed);
  });

  test('end() past its deadline takes a forgotten connection back: transaction rolled back, session closed', async () => {
    const pool = facade({ connectionLimit: 1, leasepool: { endTimeoutMs: 200, logger: captureLogger().logger } });
    const held = await pool.getConnection();
    const thread = held.threadId;
    await held.beginTransaction();
    await held.query(`INSERT INTO ${ROWS} (tag) VALUES ('forgotten')`);
    const started = Date.now();
    await pool.end();
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(() => held.query('SELECT 1')).toThrow(expect.objectContaining({ code: 'LEASE_REVOKED' }));
    await waitFor('the session is closed', async () => (await alive([thread])) === 0);
    const [rows] = await admin.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${ROWS} WHERE tag = 'forgotten'`);
    expect(Number(rows[0]?.n)).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('options', () => {
  test('a mysql:// URL with pool parameters, as mysql2 accepts it', async () => {
    const pool = createPool(`${MYSQL_URL}${MYSQL_URL.includes('?') ? '&' : '?'}connectionLimit=2&queueLimit=1`);
    facades.push(pool);
    expect(pool.stats()).toMatchObject({ max: 2, min: 0 });
    const [rows] = await pool.query<RowDataPacket[]>('SELECT DATABASE() AS db');
    expect(rows[0]?.db).toBe(DB);
  });

  test('connection options reach the driver (keep-alive), pool and leasepool options do not', async () => {
    const warnings = jest.spyOn(console, 'error');
    try {
      const pool = facade({
        connectionLimit: 2,
        maxIdle: 1,
        idleTimeout: 30_000,
        queueLimit: 5,
        waitForConnections: true,
        connectTimeout: 4_000,
        enableKeepAlive: false,
        keepAliveInitialDelay: 1234,
        dateStrings: true,
        leasepool: { name: 'mysql_compat_opts' },
      });
      const conn = await pool.getConnection();
      expect(conn.connection.config).toMatchObject({ enableKeepAlive: false, keepAliveInitialDelay: 1234, dateStrings: true });
      const [rows] = await conn.query<RowDataPacket[]>("SELECT DATE('2024-01-02') AS d");
      expect(rows[0]?.d).toBe('2024-01-02');
      conn.release();
      expect(warnings.mock.calls.filter((args) => String(args[0]).includes('Ignoring invalid configuration option'))).toEqual([]);
    } finally {
      warnings.mockRestore();
    }
  });

  test('values mysql2 would silently replace by a default are refused with one ConfigError naming each', () => {
    const err = (() => {
      try {
        createPool({
          uri: MYSQL_URL,
          connectionLimit: 0,
          queueLimit: -1,
          idleTimeout: 'soon' as unknown as number,
          connectTimeout: 0,
          leasepool: { bogus: true } as unknown as PoolOptions['leasepool'],
        });
      } catch (e) {
        return e;
      }
      throw new Error('expected a ConfigError');
    })() as Error & { code?: string; fields?: string[] };
    expect(err.code).toBe('INVALID_CONFIG');
    expect(err.fields).toEqual(expect.arrayContaining(['connectionLimit', 'queueLimit', 'idleTimeout', 'connectTimeout', 'leasepool.bogus']));
    expect(() => createPool('not a url :// with secret p4ss')).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.not.stringContaining('p4ss') }));
  });
});
