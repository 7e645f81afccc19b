/**
 * mysql2's pool contract as mysql2's own test suite states it (test/integration/test-pool*.test.mts,
 * promise-wrappers, graceful-end, dispose in sidorares/node-mysql2), written here in our words and
 * run side by side on mysql2's promise pool and on the drop-in, against the real MariaDB/MySQL.
 * Where mysql2's tests read private lists (`_allConnections`, `_freeConnections`), the drop-in is
 * read through `stats()`. Also the callback-API pool (`pool.pool`) the drop-in exposes, as mysql2.
 * Tables are prefixed `mysql_contract_`.
 */
import { once } from 'node:events';
import * as net from 'node:net';
import { createServer, PoolConnection as CorePoolConnection, type Connection as CoreConnection, type PoolConnection as CorePoolConn } from 'mysql2';
import { createConnection, createPool as createMysql2Pool, PoolConnection as PromisePoolConnection } from 'mysql2/promise';
import type { Connection, Pool as Mysql2Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';

import { createPool, MYSQL2_MESSAGES, type Pool, type PoolOptions } from '../../adapters/mysql2';
import { captureLogger, rejection, waitFor } from '../helpers/lifecycle';

const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const ROWS = 'mysql_contract_rows';

let admin: Connection;
const opened: Array<Pool | Mysql2Pool> = [];

function facade(options: PoolOptions = {}): Pool {
  const { leasepool, ...rest } = options;
  const pool = createPool({ uri: MYSQL_URL, ...rest, leasepool: { leakDetectionMs: 0, endTimeoutMs: 2_000, logger: captureLogger().logger, ...leasepool } });
  opened.push(pool);
  return pool;
}

function native(options: Record<string, unknown> = {}): Mysql2Pool {
  const pool = createMysql2Pool({ uri: MYSQL_URL, ...options });
  opened.push(pool);
  return pool;
}

type Counts = { all: number; free: number };
/** mysql2's private lists, or the drop-in's stats(): open and idle connections. */
function counts(pool: Pool | Mysql2Pool): Counts {
  if ('leasepool' in pool) {
    const s = pool.stats();
    return { all: s.size, free: s.idle };
  }
  const core = pool.pool as unknown as { _allConnections: { length: number }; _freeConnections: { length: number } };
  return { all: core._allConnections.length, free: core._freeConnections.length };
}

/** Both pools, each labelled, for side-by-side runs. */
function both(options: PoolOptions = {}): Array<[string, Pool | Mysql2Pool]> {
  const { leasepool: _ignored, ...mysqlOptions } = options;
  return [
    ['mysql2', native(mysqlOptions)],
    ['drop-in', facade(options)],
  ];
}

function getCore(pool: Mysql2Pool['pool']): Promise<CorePoolConn> {
  return new Promise((resolve, reject) => pool.getConnection((err, conn) => (err ? reject(err) : resolve(conn))));
}

function coreQuery(conn: CorePoolConn | CoreConnection, sql: string, values: unknown[] = []): Promise<RowDataPacket[]> {
  return new Promise((resolve, reject) => conn.query<RowDataPacket[]>(sql, values, (err, rows) => (err ? reject(err) : resolve(rows))));
}

beforeAll(async () => {
  admin = await createConnection(MYSQL_URL);
  await admin.query(`DROP TABLE IF EXISTS ${ROWS}`);
  await admin.query(`CREATE TABLE ${ROWS} (id INT AUTO_INCREMENT PRIMARY KEY, tag VARCHAR(64) NOT NULL) ENGINE=InnoDB`);
});

afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${ROWS}`);
  await admin.end();
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((p) => p.end().catch(() => undefined)));
});

// ---------------------------------------------------------------------------------------------

describe('getConnection / release / destroy', () => {
  test('a released connection is reused; connectionLimit bounds the open connections; instanceof PoolConnection', async () => {
    for (const [name, pool] of both({ connectionLimit: 2 })) {
      const first = await pool.getConnection();
      expect([name, first instanceof PromisePoolConnection]).toEqual([name, true]);
      const thread = first.threadId;
      first.release();
      const again = await pool.getConnection();
      expect([name, again.threadId]).toEqual([name, thread]);
      const second = await pool.getConnection();
      expect([name, counts(pool)]).toEqual([name, { all: 2, free: 0 }]);
      const third = pool.getConnection(); // waits: the limit is reached
      let served = false;
      void third.then(() => (served = true));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect([name, served]).toEqual([name, false]);
      const secondThread = second.threadId;
      second.release();
      const got = await third;
      expect([name, got.threadId]).toEqual([name, secondThread]);
      expect([name, counts(pool).all]).toEqual([name, 2]);
      again.release();
      got.release();
    }
  });

  test('destroy() takes a held connection out of the pool (mysql2: test-pool-destroy-removes-connection)', async () => {
    for (const [name, pool] of both({ connectionLimit: 3 })) {
      const [a, b, c] = await Promise.all([pool.getConnection(), pool.getConnection(), pool.getConnection()]);
      b.release();
      c.release();
      expect([name, counts(pool)]).toEqual([name, { all: 3, free: 2 }]);
      a.destroy();
      await waitFor(`${name}: the destroyed connection left the pool`, () => counts(pool).all === 2);
      expect([name, counts(pool)]).toEqual([name, { all: 2, free: 2 }]);
      const [rows] = await pool.query<RowDataPacket[]>('SELECT 1 AS ok');
      expect([name, rows[0]?.ok]).toEqual([name, 1]);
    }
  });

  test('a second release() is a no-op: one idle connection, never handed to two callers (test-pool-double-release)', async () => {
    for (const [name, pool] of both({ connectionLimit: 3 })) {
      const conn = await pool.getConnection();
      conn.release();
      conn.release();
      await waitFor(`${name}: released`, () => counts(pool).free === 1);
      expect([name, counts(pool)]).toEqual([name, { all: 1, free: 1 }]);
      const [x, y] = [await pool.getConnection(), await pool.getConnection()];
      expect([name, x.threadId === y.threadId]).toEqual([name, false]);
      x.release();
      x.release();
      y.release();
      y.release();
      await waitFor(`${name}: both back`, () => counts(pool).free === 2);
      expect([name, counts(pool)]).toEqual([name, { all: 2, free: 2 }]);
    }
  });

  test('releaseConnection(connection) gives it back, as connection.release() does', async () => {
    for (const [name, pool] of both({ connectionLimit: 1 })) {
      const conn = await pool.getConnection();
      const thread = conn.threadId;
      pool.releaseConnection(conn);
      await waitFor(`${name}: released`, () => counts(pool).free === 1);
      const next = await pool.getConnection();
      expect([name, next.threadId]).toEqual([name, thread]);
      next.release();
    }
  });

  test("without gracefulEnd, connection.end() releases it and emits mysql2's deprecation 'warn' on the core connection (graceful-end default config)", async () => {
    const quiet = jest.spyOn(console, 'warn').mockImplementation(() => undefined); // mysql2 also prints it
    try {
      for (const [name, pool] of both({ connectionLimit: 1 })) {
        const warnings: string[] = [];
        const conn = await pool.getConnection();
        const underlying = conn.connection;
        const listener = (w: Error): void => void warnings.push(w.message);
        underlying.on('warn', listener);
        await conn.end();
        underlying.off('warn', listener);
        const core = await getCore(pool.pool);
        core.on('warn', (w: Error) => warnings.push(w.message));
        let called = false;
        core.end(() => (called = true));
        expect([name, called, warnings.length]).toEqual([name, true, 2]);
        for (const w of warnings) expect(w).toMatch(/^Calling conn\.end\(\) to release a pooled connection is deprecated/);
        await waitFor(`${name}: released, not closed`, () => counts(pool).free === 1);
        expect([name, counts(pool)]).toEqual([name, { all: 1, free: 1 }]);
      }
    } finally {
      quiet.mockRestore();
    }
  });

  test('with gracefulEnd, connection.end() closes the connection and takes it out of the pool (graceful-end tests)', async () => {
    for (const [name, pool] of both({ connectionLimit: 1, gracefulEnd: true })) {
      const conn = await pool.getConnection();
      expect([name, counts(pool).all]).toEqual([name, 1]);
      await conn.end();
      await waitFor(`${name}: ended connection removed`, () => counts(pool).all === 0);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('end()', () => {
  // mysql2's test-pool-end states that the running queries are fulfilled; mysql2 3.24 (installed
  // here) rejects them too ("Can't add new command when connection is in closed state": its
  // pool.query sends on the next tick, after end() closed the connection). The drop-in does what
  // the test states.
  test('queued work is refused with "Pool is closed.", running work finishes (test-pool-end, gracefulEnd)', async () => {
    for (const [name, pool] of both({ connectionLimit: 2, gracefulEnd: true })) {
      const warm = await Promise.all([pool.getConnection(), pool.getConnection()]);
      for (const conn of warm) conn.release();
      let enqueued = 0;
      const queuedBoth = new Promise<void>((resolve) =>
        (pool as Mysql2Pool).on('enqueue', () => {
          if (++enqueued === 2) resolve();
        }),
      );
      const queries = Array.from({ length: 4 }, () => pool.query('SELECT SLEEP(0.3) AS s'));
      const running = Promise.allSettled(queries.slice(0, 2));
      const queued = Promise.allSettled(queries.slice(2));
      await queuedBoth;
      const ended = pool.end();
      for (const result of await queued) {
        expect([name, result.status, result.status === 'rejected' ? (result.reason as Error).message : undefined]).toEqual([name, 'rejected', MYSQL2_MESSAGES.closed]);
      }
      const statuses = (await running).map((r) => r.status);
      if (name === 'drop-in') expect(statuses).toEqual(['fulfilled', 'fulfilled']);
      await ended;
      expect([name, ((await rejection(pool.query('SELECT 1'))) as Error).message]).toEqual([name, MYSQL2_MESSAGES.closed]);
    }
  });

  test('asyncDispose ends the pool; a second end (or dispose) after end() is fine (dispose tests)', async () => {
    for (const [name, make] of [
      ['mysql2', () => native({ connectionLimit: 1 })],
      ['drop-in', () => facade({ connectionLimit: 1 })],
    ] as const) {
      let kept: Pool | Mysql2Pool | undefined;
      {
        await using pool = make();
        kept = pool;
        const [rows] = await pool.query<RowDataPacket[]>('SELECT 1 AS one');
        expect([name, rows]).toEqual([name, [{ one: 1 }]]);
      }
      expect([name, ((await rejection(kept.query('SELECT 1'))) as Error).message]).toEqual([name, MYSQL2_MESSAGES.closed]);
      const pool = make();
      await pool.end();
      await pool[Symbol.asyncDispose]();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('await using / Symbol.dispose on connections', () => {
  test('await using releases the connection at the end of the block; one slot serves two blocks', async () => {
    for (const [name, pool] of both({ connectionLimit: 1 })) {
      for (let i = 0; i < 2; i++) {
        await using conn: PoolConnection = await pool.getConnection();
        const [rows] = await conn.query<RowDataPacket[]>('SELECT 1 AS one');
        expect([name, rows]).toEqual([name, [{ one: 1 }]]);
      }
      await waitFor(`${name}: released`, () => counts(pool).free === 1);
      expect([name, counts(pool)]).toEqual([name, { all: 1, free: 1 }]);
    }
  });

  test('destroy() inside an await using block: no error at dispose, the connection is gone', async () => {
    for (const [name, pool] of both({ connectionLimit: 1 })) {
      {
        await using conn: PoolConnection = await pool.getConnection();
        await conn.query('SELECT 1');
        conn.destroy();
      }
      await waitFor(`${name}: destroyed connection removed`, () => counts(pool).all === 0);
    }
  });

  test('the callback pool: using releases a core connection, destroy() removes it, pool.pool[Symbol.dispose] ends the pool', async () => {
    for (const [name, pool] of both({ connectionLimit: 1 })) {
      const core = pool.pool;
      {
        using conn = await getCore(core);
        expect([name, conn instanceof CorePoolConnection, typeof conn[Symbol.dispose]]).toEqual([name, true, 'function']);
        expect(await coreQuery(conn, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
      }
      await waitFor(`${name}: released by using`, () => counts(pool).free === 1);
      const again = await getCore(core);
      again.destroy();
      await waitFor(`${name}: destroyed`, () => counts(pool).all === 0);
      core[Symbol.dispose]();
      await waitFor(`${name}: ended by dispose`, async () => ((await rejection(pool.query('SELECT 1'))) as Error).message === MYSQL2_MESSAGES.closed);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('events', () => {
  test('connection, acquire, release, enqueue reach listeners on the promise pool and on pool.pool', async () => {
    for (const [name, pool] of both({ connectionLimit: 1 })) {
      const heard: string[] = [];
      for (const event of ['connection', 'acquire', 'release', 'enqueue'] as const) {
        (pool as Mysql2Pool).on(event as 'acquire', () => heard.push(`promise ${event}`));
        pool.pool.on(event, () => heard.push(`core ${event}`));
      }
      const held = await pool.getConnection();
      const waiting = pool.getConnection();
      await waitFor(`${name}: enqueue`, () => heard.includes('core enqueue'));
      held.release();
      (await waiting).release();
      await waitFor(`${name}: last release`, () => heard.filter((e) => e === 'core release').length >= 1);
      for (const event of ['connection', 'acquire', 'release', 'enqueue']) {
        expect([name, event, heard.filter((e) => e === `core ${event}`).length]).toEqual([name, event, heard.filter((e) => e === `promise ${event}`).length]);
        expect([name, event, heard.includes(`core ${event}`)]).toEqual([name, event, true]);
      }
    }
  });

  test('the promise pool hears its events from pool.pool, subscribing there only while it has listeners (promise-wrappers testEventsPool)', async () => {
    for (const [name, pool] of both({ connectionLimit: 1 })) {
      const events = ['acquire', 'connection', 'enqueue', 'release'] as const;
      const core = pool.pool;
      for (const event of events) expect([name, event, core.listenerCount(event)]).toEqual([name, event, 0]);
      const heard: string[] = [];
      const listeners = events.map((event) => [event, () => void heard.push(event)] as const);
      for (const [event, listener] of listeners) (pool as Mysql2Pool).on(event as 'acquire', listener);
      for (const event of events) expect([name, event, core.listenerCount(event)]).toEqual([name, event, 1]);
      for (const event of events) core.emit(event);
      expect([name, heard]).toEqual([name, [...events]]);
      for (const [event, listener] of listeners) (pool as unknown as { off(e: string, l: () => void): void }).off(event, listener);
      for (const event of events) expect([name, event, core.listenerCount(event)]).toEqual([name, event, 0]);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('idle release (maxIdle, idleTimeout)', () => {
  test('maxIdle < connectionLimit: idle connections past idleTimeout are closed; a new one is opened on demand (test-pool-release-idle-connection-timeout)', async () => {
    const ids = await Promise.all(
      both({ connectionLimit: 3, maxIdle: 1, idleTimeout: 300 }).map(async ([name, pool]) => {
        const conns = await Promise.all([pool.getConnection(), pool.getConnection(), pool.getConnection()]);
        const threads = conns.map((c) => c.threadId);
        for (const c of conns) c.release();
        await waitFor(`${name}: all three idle`, () => counts(pool).free === 3);
        await waitFor(`${name}: idle connections closed`, () => counts(pool).all === 0, 5_000, 50);
        const fresh = await pool.getConnection();
        expect([name, counts(pool)]).toEqual([name, { all: 1, free: 0 }]);
        const id = fresh.threadId;
        fresh.release();
        return [threads, id] as const;
      }),
    );
    for (const [old, fresh] of ids) expect(old).not.toContain(fresh);
  });
});

// ---------------------------------------------------------------------------------------------

describe('connect errors', () => {
  /** A server that answers every handshake with "too many connections" (1040), as mysql2's test-pool-connect-error. */
  async function tooManyConnections(): Promise<{ port: number; close(): Promise<void> }> {
    const server = createServer((conn) => {
      conn.on('error', () => undefined);
      conn.serverHandshake({
        protocolVersion: 10,
        serverVersion: '5.6.10',
        connectionId: 1234,
        statusFlags: 2,
        characterSet: 8,
        capabilityFlags: 0xffffff,
        authCallback: (_params: unknown, cb: (err: unknown, info?: unknown) => void) => cb(null, { message: 'too many connections', code: 1040 }),
      } as unknown as Parameters<typeof conn.serverHandshake>[0]);
    });
    const inner = (server as unknown as { _server: net.Server })._server;
    server.listen(0);
    await once(inner, 'listening');
    return {
      port: (inner.address() as net.AddressInfo).port,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  test('a handshake refused with 1040 fails the query; the drop-in gives ConnectError with the server error as cause', async () => {
    const fake = await tooManyConnections();
    try {
      const options = { uri: undefined, host: '127.0.0.1', port: fake.port, user: 'u', password: 'secret-1040-pw', database: 'd' };
      const theirs = createMysql2Pool(options);
      opened.push(theirs);
      const ref = (await rejection(theirs.query('SELECT 1'))) as { errno?: number; sqlState?: string };
      expect(ref.errno).toBe(1040);
      const ours = facade(options);
      const err = (await rejection(ours.query('SELECT 1'))) as Error & { code?: string; errno?: number; sqlState?: string; cause?: { errno?: number } };
      expect(err).toMatchObject({ name: 'ConnectError', code: 'CONNECT_FAILED' });
      // mysql2's errno (and SQLSTATE) on the error itself, as code checking `err.errno` expects; the driver's error as cause.
      expect({ errno: err.errno, sqlState: err.sqlState }).toEqual({ errno: ref.errno, sqlState: ref.sqlState });
      expect(err.cause?.errno).toBe(1040);
      const viaGetConnection = (await rejection(ours.getConnection())) as { errno?: number };
      expect(viaGetConnection.errno).toBe(1040);
      expect(`${err.message} ${err.stack} ${String(err.cause)}`).not.toContain('secret-1040-pw');
      expect(ours.stats()).toMatchObject({ size: 0, active: 0 });
    } finally {
      await Promise.all(opened.splice(0).map((p) => p.end().catch(() => undefined)));
      await fake.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('the callback-API pool (pool.pool)', () => {
  test('getConnection(cb) hands out the same PoolConnection object for the same connection, as mysql2 does', async () => {
    for (const [name, pool] of both({ connectionLimit: 1 })) {
      const a = await getCore(pool.pool);
      a.release();
      const b = await getCore(pool.pool);
      expect([name, a === b]).toEqual([name, true]);
      const noop = (): void => undefined;
      expect([name, b.on('warn', noop) === b, b.off('warn', noop) === b]).toEqual([name, true, true]); // chaining stays on it
      b.release();
    }
  });

  test('query(sql, values, cb) and execute(sql, values, cb) answer (err, rows, fields); errors are the driver\'s', async () => {
    for (const [name, pool] of both({ connectionLimit: 1 })) {
      const core = pool.pool;
      const viaQuery = await new Promise<unknown>((resolve, reject) => core.query('SELECT ? AS v', [7], (err, rows) => (err ? reject(err) : resolve(rows))));
      const viaExecute = await new Promise<unknown>((resolve, reject) => core.execute('SELECT ? AS v', [8], (err, rows) => (err ? reject(err) : resolve(rows))));
      const failed = await new Promise<{ code?: string } | null>((resolve) => core.query('SELEC 1', (err) => resolve(err as { code?: string } | null)));
      expect([name, viaQuery, viaExecute, failed?.code]).toEqual([name, [{ v: 7 }], [{ v: 8 }], 'ER_PARSE_ERROR']);
      expect([name, core.escape("a'b"), core.format('SELECT ??', ['c'])]).toEqual([name, "'a\\'b'", 'SELECT `c`']);
      expect([name, typeof core.promise]).toEqual([name, 'function']);
    }
  });

  test('callbacks may return anything (a Query, as `(err, conn) => conn.query(…)` does): nothing is treated as a promise', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (const [name, pool] of both({ connectionLimit: 1 })) {
        const core = pool.pool;
        const viaConnection = await new Promise<unknown>((resolve, reject) =>
          core.getConnection((err, conn) =>
            err
              ? reject(err)
              : conn.query('SELECT 1 AS one', (qErr, rows) => {
                  conn.release();
                  if (qErr) reject(qErr);
                  else resolve(rows);
                }),
          ),
        );
        const chained = await new Promise<unknown>((resolve, reject) =>
          core.query('SELECT 2 AS two', (err) => (err ? reject(err) : core.query('SELECT 3 AS three', (e2, rows) => (e2 ? reject(e2) : resolve(rows))))),
        );
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect([name, viaConnection, chained, unhandled]).toEqual([name, [{ one: 1 }], [{ three: 3 }], []]);
      }
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  test('query(sql) without a callback returns mysql2\'s Query command: result/end events, error event, stream(); the connection comes back', async () => {
    for (const [name, pool] of both({ connectionLimit: 1 })) {
      const core = pool.pool as unknown as { query(sql: string, values?: unknown): NodeJS.EventEmitter & { stream(o?: object): AsyncIterable<unknown> } };
      const rows: unknown[] = [];
      const command = core.query('SELECT ? AS v UNION ALL SELECT ?', [1, 2]);
      command.on('result', (row) => rows.push(row));
      await once(command, 'end');
      expect([name, rows]).toEqual([name, [{ v: 1 }, { v: 2 }]]);
      const [err] = (await once(core.query('SELEC 1'), 'error')) as [{ code?: string }];
      expect([name, err.code]).toEqual([name, 'ER_PARSE_ERROR']);
      const streamed: unknown[] = [];
      for await (const row of core.query('SELECT 3 AS v').stream()) streamed.push(row);
      expect([name, streamed]).toEqual([name, [{ v: 3 }]]);
      await waitFor(`${name}: connection back`, () => counts(pool).free === 1);
      // A transaction opened this way on the drop-in is still seen at release.
      if (name === 'drop-in') {
        await once(core.query('START TRANSACTION'), 'end');
        const [[state]] = await (pool as Pool).query<RowDataPacket[]>('SELECT @@in_transaction AS t');
        expect(Number(state?.t)).toBe(0);
      }
    }
  });

  test('a core connection released inside a transaction is rolled back before reuse (mysql2 hands it on open)', async () => {
    const run = async (pool: Pool | Mysql2Pool, tag: string): Promise<{ inTx: number; rows: number }> => {
      const conn = await getCore(pool.pool);
      await coreQuery(conn, 'START TRANSACTION');
      await coreQuery(conn, `INSERT INTO ${ROWS} (tag) VALUES (?)`, [tag]);
      conn.release();
      const next = await getCore(pool.pool);
      const [state] = await coreQuery(next, 'SELECT @@in_transaction AS t');
      next.release();
      const [count] = (await admin.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${ROWS} WHERE tag = ?`, [tag]))[0];
      if (Number(state?.t) === 1) await coreQuery(await getCore(pool.pool), 'ROLLBACK');
      return { inTx: Number(state?.t), rows: Number(count?.n) };
    };
    expect(await run(native({ connectionLimit: 1 }), 'cb-native')).toEqual({ inTx: 1, rows: 0 });
    expect(await run(facade({ connectionLimit: 1 }), 'cb-dropin')).toEqual({ inTx: 0, rows: 0 });
  });

  test('using a core connection while it sits released throws LeaseReleasedError; release and destroy stay no-ops', async () => {
    const pool = facade({ connectionLimit: 1 });
    const conn = await getCore(pool.pool);
    conn.release();
    expect(() => conn.query('SELECT 1')).toThrow(expect.objectContaining({ code: 'LEASE_RELEASED' }));
    expect(() => conn.threadId).toThrow(expect.objectContaining({ code: 'LEASE_RELEASED' }));
    conn.release();
    conn.destroy();
    expect(pool.stats()).toMatchObject({ size: 1, idle: 1, active: 0 });
  });

  test('pool.pool.end(cb) ends the pool; getConnection(cb) afterwards gets "Pool is closed."', async () => {
    const pool = facade({ connectionLimit: 1 });
    await new Promise<void>((resolve, reject) => pool.pool.end((err) => (err ? reject(err) : resolve())));
    const err = await new Promise<unknown>((resolve) => pool.pool.getConnection((e) => resolve(e)));
    expect(err).toMatchObject({ message: MYSQL2_MESSAGES.closed, code: 'POOL_CLOSED' });
  });
});

// ---------------------------------------------------------------------------------------------

describe('pool state without private fields', () => {
  test('stats() and leasepool.stats() report what mysql2 keeps in _allConnections / _freeConnections / _connectionQueue', async () => {
    for (const [name, pool] of both({ connectionLimit: 2 })) {
      const a = await pool.getConnection();
      const b = await pool.getConnection();
      const waiting = pool.getConnection();
      await new Promise((resolve) => setTimeout(resolve, 20));
      // The read-only stand-ins for mysql2's private lists (length only) agree with mysql2's.
      const lists = pool.pool as unknown as { _allConnections: { length: number }; _freeConnections: { length: number }; _connectionQueue: { length: number }; _closed: boolean };
      expect([name, lists._allConnections.length, lists._freeConnections.length, lists._connectionQueue.length, lists._closed]).toEqual([name, 2, 0, 1, false]);
      if ('leasepool' in pool) {
        const s = pool.stats();
        expect(s).toEqual(pool.leasepool.stats());
        expect(s).toMatchObject({ size: 2, idle: 0, active: 2, pending: 1, max: 2, closed: false });
        // A snapshot: writing to it changes nothing in the pool.
        (s as { size: number }).size = 99;
        expect(pool.stats().size).toBe(2);
      } else {
        const core = pool.pool as unknown as { _allConnections: { length: number }; _freeConnections: { length: number }; _connectionQueue: { length: number } };
        expect([name, core._allConnections.length, core._freeConnections.length, core._connectionQueue.length]).toEqual([name, 2, 0, 1]);
      }
      a.release();
      (await waiting).release();
      b.release();
    }
  });
});
