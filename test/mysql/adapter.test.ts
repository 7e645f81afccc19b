/**
 * mysql2 adapter against a real MariaDB/MySQL (adapter level, no pool).
 * Tables and users of this file are prefixed `mysql_adapter_` / `lp_pw_user`.
 */
import { once } from 'node:events';
import * as net from 'node:net';
import { PassThrough } from 'node:stream';
import { inspect } from 'node:util';
import { createConnection } from 'mysql2/promise';
import type { Connection } from 'mysql2/promise';

import { mysqlAdapter, mysqlDialect } from '../../adapters/mysql2';
import { classifyStatement, statementEffect } from '../../adapters/mysql2/statements';
import type { MysqlAdapter } from '../../adapters/mysql2';
import type { ConnectionEvents } from '../../src/adapter';
import { ConfigError, ConnectError } from '../../src/errors';

const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const server = new URL(MYSQL_URL);
const HOST = server.hostname;
const PORT = server.port === '' ? 3306 : Number(server.port);
const DB = decodeURIComponent(server.pathname.slice(1));

const LOCKS = 'mysql_adapter_locks';
const ROWS = 'mysql_adapter_rows';
const DDL_TABLE = 'mysql_adapter_ddl';
const PW_USER = 'lp_pw_user';
// Characters that need URL encoding, so both the raw and the encoded form are checked.
const PASSWORD = 'Sup3r$ecret:p@ss/w0rd#lp';

const adapter = mysqlAdapter(MYSQL_URL);
let admin: Connection;
const opened: { adapter: MysqlAdapter; conn: Connection }[] = [];

const noEvents: ConnectionEvents = { onError: () => undefined };

async function open(a: MysqlAdapter = adapter, events: ConnectionEvents = noEvents): Promise<Connection> {
  const conn = await a.connect(new AbortController().signal, events);
  opened.push({ adapter: a, conn });
  return conn;
}

/** What the guard does for a call through `lease.conn`. */
async function run(conn: Connection, sql: string, a: MysqlAdapter = adapter): Promise<unknown> {
  a.observeStatement?.(conn, 'query', sql);
  const result: unknown = await conn.query(sql);
  a.observeResult?.(conn, 'query', result);
  return result;
}

/** The server's own view, read with a statement the adapter does not see and that changes nothing. */
async function serverInTx(conn: Connection): Promise<boolean> {
  const [rows] = await conn.query('SELECT @@in_transaction AS t');
  return Number((rows as { t: number }[])[0]?.t) === 1;
}

async function expectStatus(conn: Connection, expected: 'idle' | 'in_tx'): Promise<void> {
  expect(adapter.txStatus?.(conn)).toBe(expected);
  expect(await serverInTx(conn)).toBe(expected === 'in_tx');
}

async function blackhole(): Promise<{ port: number; sockets: net.Socket[]; accepted: () => number; close: () => Promise<void> }> {
  const sockets: net.Socket[] = [];
  const srv = net.createServer((socket) => {
    socket.on('error', () => undefined);
    sockets.push(socket);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  return {
    port,
    sockets,
    accepted: () => sockets.length,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Poll (no fixed sleep) until `threadId` is running a statement starting with `prefix`. */
async function waitUntilRunning(threadId: number, prefix: string): Promise<void> {
  for (;;) {
    const [rows] = await admin.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE ?', [
      threadId,
      `${prefix}%`,
    ]);
    if (Number((rows as { n: number }[])[0]?.n) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Everything reachable from an error, hidden fields included. */
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

function expectNoPassword(err: unknown): void {
  const text = everything(err);
  expect(text).not.toContain(PASSWORD);
  expect(text).not.toContain(encodeURIComponent(PASSWORD));
  expect(text).not.toContain('Sup3r');
}

beforeAll(async () => {
  admin = await createConnection(MYSQL_URL);
  await admin.query(`CREATE TABLE IF NOT EXISTS ${LOCKS} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`);
  await admin.query(`REPLACE INTO ${LOCKS} (id, v) VALUES (1, 0), (2, 0), (3, 0)`);
  await admin.query(`CREATE TABLE IF NOT EXISTS ${ROWS} (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(50)) ENGINE=InnoDB`);
  await admin.query(`DROP TABLE IF EXISTS ${DDL_TABLE}`);
});

afterEach(async () => {
  for (const { adapter: a, conn } of opened.splice(0)) await a.close(conn);
});

afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${LOCKS}, ${ROWS}, ${DDL_TABLE}`);
  await admin.end();
});

describe('configuration', () => {
  it('names the driver and the target without credentials', () => {
    expect(adapter.name).toBe('mysql2');
    expect(adapter.target).toBe(`${HOST}:${PORT}/${DB}`);
    const withSecret = mysqlAdapter(`mysql://someone:${encodeURIComponent(PASSWORD)}@db.internal:3307/shop`);
    expect(withSecret.target).toBe('db.internal:3307/shop');
    const fromObject = mysqlAdapter({ host: 'db.internal', user: 'someone', password: PASSWORD, database: 'shop' });
    expect(fromObject.target).toBe('db.internal:3306/shop');
  });

  it('rejects an unparseable URL and bad adapter options with ConfigError, never echoing the URL', () => {
    let thrown: unknown;
    try {
      mysqlAdapter(`not a url ${PASSWORD}`);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expectNoPassword(thrown);
    expect(() => mysqlAdapter(MYSQL_URL, { closeTimeoutMs: -1 })).toThrow(ConfigError);
    expect(() => mysqlAdapter(MYSQL_URL, { cancelTimeout: 5 } as never)).toThrow(/cancelTimeout is not an option/);
  });

  it('exposes the lifecycle and statement methods the guard needs', () => {
    expect(adapter.lifecycleMethods).toEqual({ release: ['release', Symbol.asyncDispose], destroy: ['end', 'destroy', 'close'] });
    expect(adapter.statementMethods).toEqual(expect.arrayContaining(['query', 'execute', 'beginTransaction', 'commit', 'rollback']));
  });
});

describe('connect and close', () => {
  it('connects, validates and closes', async () => {
    const conn = await open();
    const [rows] = await conn.query('SELECT 1 + 1 AS two');
    expect(rows).toEqual([{ two: 2 }]);
    await expect(adapter.validate(conn)).resolves.toBeUndefined();
    expect(adapter.txStatus?.(conn)).toBe('idle');
    await adapter.close(conn);
    expect(adapter.isFatal(await conn.query('SELECT 1').catch((err: unknown) => err))).toBe(true);
    expect(adapter.txStatus?.(conn)).toBe('unknown');
    await expect(adapter.close(conn)).resolves.toBeUndefined(); // twice: never throws
  });

  it('close is bounded even behind a running statement', async () => {
    const a = mysqlAdapter(MYSQL_URL, { closeTimeoutMs: 300 });
    const conn = await open(a);
    const running = conn.query('SELECT SLEEP(5)').catch((err: unknown) => err);
    const started = performance.now();
    await a.close(conn);
    expect(performance.now() - started).toBeLessThan(1_000);
    // The statement cut off by the close settles (mysql2 alone would leave it pending forever).
    const err = await running;
    expect((err as Error).message).toMatch(/closed by leasepool/);
    expect(adapter.isFatal(err)).toBe(true);
  });

  it('honours the signal during the handshake (blackhole server): ConnectError, socket destroyed', async () => {
    const hole = await blackhole();
    try {
      const a = mysqlAdapter({ host: '127.0.0.1', port: hole.port, user: 'root', database: 'test' });
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(new Error('connect timeout 300 ms')), 300);
      const started = performance.now();
      const err: unknown = await a.connect(controller.signal, noEvents).then(
        () => undefined,
        (e: unknown) => e,
      );
      clearTimeout(timer);
      const elapsed = performance.now() - started;
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe('CONNECT_FAILED');
      expect((err as Error).message).toBe(`mysql2: connecting to 127.0.0.1:${hole.port}/test was aborted: connect timeout 300 ms`);
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(1_500);
      // Our side really let go of the socket: the server sees it close.
      expect(hole.accepted()).toBe(1);
      const serverSide = hole.sockets[0]!;
      if (!serverSide.destroyed) await once(serverSide, 'close');
    } finally {
      await hole.close();
    }
  });

  it('does not even open a socket when the signal is already aborted', async () => {
    const hole = await blackhole();
    try {
      const a = mysqlAdapter({ host: '127.0.0.1', port: hole.port, user: 'root' });
      const controller = new AbortController();
      controller.abort(new Error('already late'));
      await expect(a.connect(controller.signal, noEvents)).rejects.toBeInstanceOf(ConnectError);
      await new Promise((resolve) => setImmediate(resolve));
      expect(hole.accepted()).toBe(0);
    } finally {
      await hole.close();
    }
  });

  it('reports a refused connection as ConnectError with the driver code kept on the cause', async () => {
    const port = await closedPort();
    const a = mysqlAdapter({ host: '127.0.0.1', port, user: 'root', password: PASSWORD });
    const err: unknown = await a.connect(new AbortController().signal, noEvents).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    // The driver's text, as pg's ConnectError carries it, then the code.
    expect((err as Error).message).toBe(`mysql2: could not connect to 127.0.0.1:${port}/: connect ECONNREFUSED 127.0.0.1:${port} (ECONNREFUSED)`);
    expect(((err as Error).cause as { code?: string }).code).toBe('ECONNREFUSED');
    expectNoPassword(err);
  });

  it('redacts the password from a driver error that contains it', async () => {
    const a = mysqlAdapter({
      user: 'root',
      password: PASSWORD,
      stream: () => {
        const stream = new PassThrough();
        setImmediate(() => stream.emit('error', Object.assign(new Error(`tls failed, password was ${PASSWORD}`), { code: 'EPROTO' })));
        return stream;
      },
    });
    const err: unknown = await a.connect(new AbortController().signal, noEvents).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect(((err as Error).cause as Error).message).toBe('tls failed, password was ***');
    expectNoPassword(err);
  });

  describe('with a password user', () => {
    beforeAll(async () => {
      for (const host of ['%', '127.0.0.1', 'localhost']) {
        await admin.query(`DROP USER IF EXISTS '${PW_USER}'@'${host}'`);
        await admin.query(`CREATE USER '${PW_USER}'@'${host}' IDENTIFIED BY ?`, [PASSWORD]);
      }
    });
    afterAll(async () => {
      for (const host of ['%', '127.0.0.1', 'localhost']) await admin.query(`DROP USER IF EXISTS '${PW_USER}'@'${host}'`);
    });

    it('connects with the right password (the user is real)', async () => {
      const a = mysqlAdapter({ host: HOST, port: PORT, user: PW_USER, password: PASSWORD });
      const conn = await open(a);
      const [rows] = await conn.query('SELECT CURRENT_USER() AS u');
      expect((rows as { u: string }[])[0]?.u).toMatch(new RegExp(`^${PW_USER}@`));
    });

    it('a wrong password gives ConnectError; no form of any password anywhere in it', async () => {
      const wrong = `${PASSWORD}-wrong`;
      const configs = [
        { host: HOST, port: PORT, user: PW_USER, password: wrong },
        `mysql://${PW_USER}:${encodeURIComponent(wrong)}@${HOST}:${PORT}/`,
      ];
      for (const config of configs) {
        const a = mysqlAdapter(config);
        const err: unknown = await a.connect(new AbortController().signal, noEvents).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ConnectError);
        // The server's text, with "(using password: YES)" intact (it tells whether one was sent, not what).
        expect((err as Error).message).toMatch(
          new RegExp(`^mysql2: could not connect to ${HOST.replace(/\./g, '\\.')}:${PORT}/: Access denied for user '${PW_USER}'@'[^']+' \\(using password: YES\\) \\(ER_ACCESS_DENIED_ERROR\\)$`),
        );
        expect(((err as Error).cause as { errno?: number }).errno).toBe(1045);
        expectNoPassword(err);
      }
    });
  });
});

describe('transaction status without extra round trips', () => {
  it('follows START TRANSACTION / COMMIT typed by hand, as the server does', async () => {
    const conn = await open();
    await expectStatus(conn, 'idle');
    await run(conn, 'START TRANSACTION');
    await expectStatus(conn, 'in_tx');
    await run(conn, `INSERT INTO ${ROWS} (note) VALUES ('hand')`);
    await expectStatus(conn, 'in_tx');
    await run(conn, `SELECT * FROM ${ROWS} LIMIT 1`);
    await expectStatus(conn, 'in_tx');
    await run(conn, 'SAVEPOINT a');
    await run(conn, 'ROLLBACK TO SAVEPOINT a');
    await expectStatus(conn, 'in_tx');
    await run(conn, ' /* by hand */ commit ');
    await expectStatus(conn, 'idle');
    await run(conn, 'BEGIN');
    await expectStatus(conn, 'in_tx');
    await run(conn, 'ROLLBACK');
    await expectStatus(conn, 'idle');
  });

  it('DDL inside a transaction commits it implicitly: idle afterwards, the earlier insert kept', async () => {
    const conn = await open();
    await run(conn, 'START TRANSACTION');
    await run(conn, `INSERT INTO ${ROWS} (note) VALUES ('before-ddl')`);
    await expectStatus(conn, 'in_tx');
    await run(conn, `CREATE TABLE ${DDL_TABLE} (id INT)`);
    await expectStatus(conn, 'idle');
    const [rows] = await admin.query(`SELECT COUNT(*) AS n FROM ${ROWS} WHERE note = 'before-ddl'`);
    expect(Number((rows as { n: number }[])[0]?.n)).toBeGreaterThan(0);
    await run(conn, `DROP TABLE ${DDL_TABLE}`);
  });

  it('promise-connection helpers beginTransaction/commit/rollback are tracked', async () => {
    const conn = await open();
    adapter.observeStatement?.(conn, 'beginTransaction', undefined);
    adapter.observeResult?.(conn, 'beginTransaction', await conn.beginTransaction());
    await expectStatus(conn, 'in_tx');
    adapter.observeStatement?.(conn, 'rollback', undefined);
    adapter.observeResult?.(conn, 'rollback', await conn.rollback());
    await expectStatus(conn, 'idle');
  });

  it('the pool’s own exec (dialect statements) updates the state', async () => {
    const conn = await open();
    for (const sql of mysqlDialect.begin({ isolation: 'serializable', readOnly: false })) await adapter.exec(conn, sql);
    await expectStatus(conn, 'in_tx');
    await adapter.exec(conn, mysqlDialect.savepoint('lp_sp_1'));
    await adapter.exec(conn, mysqlDialect.rollbackToSavepoint('lp_sp_1'));
    await adapter.exec(conn, mysqlDialect.releaseSavepoint('lp_sp_1'));
    await expectStatus(conn, 'in_tx');
    await adapter.exec(conn, mysqlDialect.commit);
    await expectStatus(conn, 'idle');
    for (const sql of mysqlDialect.begin({ readOnly: true })) await adapter.exec(conn, sql);
    await expectStatus(conn, 'in_tx');
    await adapter.exec(conn, mysqlDialect.rollback);
    await expectStatus(conn, 'idle');
  });

  it('is unsure (never idle) while a statement runs, and after a COMMIT whose result it never saw', async () => {
    const conn = await open();
    await run(conn, 'START TRANSACTION');
    adapter.observeStatement?.(conn, 'query', 'SELECT SLEEP(0.2)');
    const running = conn.query('SELECT SLEEP(0.2)');
    expect(adapter.txStatus?.(conn)).toBe('unknown');
    adapter.observeResult?.(conn, 'query', await running);
    expect(adapter.txStatus?.(conn)).toBe('in_tx');
    // A COMMIT that failed (the guard reports no result): the adapter must not claim idle.
    adapter.observeStatement?.(conn, 'query', 'COMMIT');
    expect(adapter.txStatus?.(conn)).toBe('unknown');
    await adapter.exec(conn, 'ROLLBACK');
    expect(adapter.txStatus?.(conn)).toBe('idle');
  });

  it('a DDL that fails to parse inside a transaction leaves it open: the adapter does not say idle', async () => {
    const conn = await open();
    await run(conn, 'START TRANSACTION');
    await expect(run(conn, `CREATE TABLE ${DDL_TABLE} (`)).rejects.toMatchObject({ code: 'ER_PARSE_ERROR' });
    expect(await serverInTx(conn)).toBe(true);
    expect(adapter.txStatus?.(conn)).not.toBe('idle');
    await adapter.exec(conn, 'ROLLBACK');
    await expectStatus(conn, 'idle');
  });

  it('tracks autocommit=0 sessions from the OK packets', async () => {
    const conn = await open();
    await run(conn, 'SET autocommit = 0');
    await expectStatus(conn, 'idle');
    await run(conn, `INSERT INTO ${ROWS} (note) VALUES ('autocommit-off')`);
    await expectStatus(conn, 'in_tx'); // the INSERT opened a transaction by itself
    await run(conn, 'COMMIT');
    await expectStatus(conn, 'idle');
    await run(conn, `SELECT COUNT(*) FROM ${ROWS}`);
    // A result set carries no status: with autocommit off the adapter assumes a transaction.
    expect(adapter.txStatus?.(conn)).toBe('in_tx');
    await run(conn, 'SET autocommit = 1'); // commits whatever is open
    await expectStatus(conn, 'idle');
  });

  it('several statements in one string: the last OK packet decides, a trailing result set leaves it unknown', async () => {
    const a = mysqlAdapter({ uri: MYSQL_URL, multipleStatements: true });
    const conn = await open(a);
    await run(conn, 'SELECT 1; START TRANSACTION', a);
    expect(a.txStatus?.(conn)).toBe('in_tx');
    expect(await serverInTx(conn)).toBe(true);
    await run(conn, 'COMMIT; SELECT 1', a);
    expect(a.txStatus?.(conn)).toBe('unknown');
    expect(await serverInTx(conn)).toBe(false);
    await run(conn, "SELECT 'a;b'; ROLLBACK", a);
    expect(a.txStatus?.(conn)).toBe('idle');
  });

  it('a prepared statement that may change the transaction state makes it unknown until reset', async () => {
    const conn = await open();
    adapter.observeStatement?.(conn, 'prepare', 'SELECT ?');
    const harmless = await conn.prepare('SELECT ?');
    await harmless.close();
    expect(adapter.txStatus?.(conn)).toBe('idle');
    adapter.observeStatement?.(conn, 'prepare', 'COMMIT');
    const commit = await conn.prepare('COMMIT');
    await commit.close();
    expect(adapter.txStatus?.(conn)).toBe('unknown');
    await adapter.reset?.(conn);
    expect(adapter.txStatus?.(conn)).toBe('idle');
  });
});

describe('reset', () => {
  it('clears session state and the tracked transaction', async () => {
    const conn = await open();
    await run(conn, "SET @lp_marker = 'dirty'");
    await run(conn, 'START TRANSACTION');
    await expectStatus(conn, 'in_tx');
    await adapter.reset?.(conn);
    await expectStatus(conn, 'idle');
    const [rows] = await conn.query('SELECT @lp_marker AS m');
    expect(rows).toEqual([{ m: null }]);
  });

  it('a failed reset rejects', async () => {
    const conn = await open();
    await admin.query(`KILL ${conn.threadId}`);
    const err: unknown = await adapter.reset?.(conn).then(
      () => 'resolved',
      (e: unknown) => e,
    );
    expect(err).not.toBe('resolved');
    expect(adapter.isFatal(err)).toBe(true);
  });
});

describe('fatal and retryable errors', () => {
  it('KILL of a connection running a statement: the statement fails fatal', async () => {
    const conn = await open();
    const running = conn.query('SELECT SLEEP(10)').then(
      () => undefined,
      (err: unknown) => err,
    );
    await waitUntilRunning(conn.threadId, 'SELECT SLEEP');
    await admin.query(`KILL ${conn.threadId}`);
    const err = await running;
    expect(err).toBeDefined();
    expect(adapter.isFatal(err)).toBe(true);
    expect(adapter.txStatus?.(conn)).toBe('unknown');
  });

  it('KILL of an idle connection: onError is called, nothing crashes, the next query fails fatal', async () => {
    let reported: (err: unknown) => void = () => undefined;
    const seen = new Promise<unknown>((resolve) => {
      reported = resolve;
    });
    const calls: unknown[] = [];
    const conn = await open(adapter, {
      onError: (err) => {
        calls.push(err);
        reported(err);
      },
    });
    await admin.query(`KILL ${conn.threadId}`);
    const err = await seen;
    expect(adapter.isFatal(err)).toBe(true);
    expect(adapter.txStatus?.(conn)).toBe('unknown');
    expect(adapter.isFatal(await conn.query('SELECT 1').catch((e: unknown) => e))).toBe(true);
    expect(calls).toHaveLength(1);
  });

  it('ordinary SQL errors are neither fatal nor retryable', async () => {
    const conn = await open();
    const err: unknown = await conn.query('SELECT * FROM mysql_adapter_no_such_table').catch((e: unknown) => e);
    expect((err as { errno?: number }).errno).toBe(1146);
    expect(adapter.isFatal(err)).toBe(false);
    expect(adapter.isRetryable(err)).toBe(false);
    await expect(conn.query('SELECT 1')).resolves.toBeDefined();
  });

  it('a real deadlock (1213) is retryable, not fatal', async () => {
    const a = await open();
    const b = await open();
    await a.query('START TRANSACTION');
    await b.query('START TRANSACTION');
    await a.query(`UPDATE ${LOCKS} SET v = v + 1 WHERE id = 1`);
    await b.query(`UPDATE ${LOCKS} SET v = v + 1 WHERE id = 2`);
    const outcomes = await Promise.allSettled([
      a.query(`UPDATE ${LOCKS} SET v = v + 1 WHERE id = 2`),
      b.query(`UPDATE ${LOCKS} SET v = v + 1 WHERE id = 1`),
    ]);
    const failures = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as unknown);
    expect(failures).toHaveLength(1);
    expect((failures[0] as { errno?: number }).errno).toBe(1213);
    expect(adapter.isRetryable(failures[0])).toBe(true);
    expect(adapter.isFatal(failures[0])).toBe(false);
    await a.query('ROLLBACK');
    await b.query('ROLLBACK');
  });

  it('a lock wait timeout (1205) is retryable only with retryOnLockWaitTimeout', async () => {
    const holder = await open();
    const waiter = await open();
    await holder.query('START TRANSACTION');
    await holder.query(`SELECT * FROM ${LOCKS} WHERE id = 3 FOR UPDATE`);
    await waiter.query('SET SESSION innodb_lock_wait_timeout = 1');
    await waiter.query('START TRANSACTION');
    const err: unknown = await waiter.query(`UPDATE ${LOCKS} SET v = v + 1 WHERE id = 3`).catch((e: unknown) => e);
    expect((err as { errno?: number }).errno).toBe(1205);
    expect(adapter.isRetryable(err)).toBe(false);
    expect(mysqlAdapter(MYSQL_URL, { retryOnLockWaitTimeout: true }).isRetryable(err)).toBe(true);
    expect(adapter.isFatal(err)).toBe(false);
    await waiter.query('ROLLBACK');
    await holder.query('ROLLBACK');
  });

  it('classifies driver and socket errors without a connection', () => {
    const fatal = [
      { code: 'PROTOCOL_CONNECTION_LOST', fatal: true },
      { code: 'ECONNRESET' },
      { code: 'EPIPE' },
      { code: 'ETIMEDOUT' },
      { errno: 2006 },
      { errno: 2013 },
      { errno: 1053, code: 'ER_SERVER_SHUTDOWN' },
      { errno: 1927, code: 'ER_CONNECTION_KILLED' },
      new Error("Can't add new command when connection is in closed state"),
      new Error('wrapped', { cause: { code: 'ECONNRESET' } }),
    ];
    for (const err of fatal) expect([err, adapter.isFatal(err)]).toEqual([err, true]);
    const notFatal = [{ errno: 1317, code: 'ER_QUERY_INTERRUPTED' }, { errno: 1062 }, { errno: 1213 }, new Error('x'), null, 'text'];
    for (const err of notFatal) expect([err, adapter.isFatal(err)]).toEqual([err, false]);
    expect(adapter.isRetryable({ errno: 1213 })).toBe(true);
    expect(adapter.isRetryable({ code: 'ER_LOCK_DEADLOCK' })).toBe(true);
    expect(adapter.isRetryable({ errno: 1205 })).toBe(false);
  });
});

describe('cancel', () => {
  it('interrupts SELECT SLEEP(30) within about a second; the connection stays usable', async () => {
    const conn = await open();
    const started = performance.now();
    const running = conn.query('SELECT SLEEP(30) AS s').then(
      ([rows]) => ({ rows }),
      (err: unknown) => ({ err }),
    );
    await waitUntilRunning(conn.threadId, 'SELECT SLEEP');
    await adapter.cancel?.(conn);
    const outcome = await running;
    expect(performance.now() - started).toBeLessThan(1_500);
    // MariaDB reports ER_QUERY_INTERRUPTED; MySQL may return SLEEP's 1 instead.
    if ('err' in outcome) {
      expect((outcome.err as { errno?: number }).errno).toBe(1317);
      expect(adapter.isFatal(outcome.err)).toBe(false);
    } else {
      expect(outcome.rows).toEqual([{ s: 1 }]);
    }
    const [rows] = await conn.query('SELECT 2 AS two');
    expect(rows).toEqual([{ two: 2 }]);
  });

  it('cancelling an idle connection does not disturb its next statement', async () => {
    const conn = await open();
    await adapter.cancel?.(conn);
    const [rows] = await conn.query('SELECT 3 AS three');
    expect(rows).toEqual([{ three: 3 }]);
  });

  it('is bounded and never throws when the server does not answer', async () => {
    const conn = await open();
    const hole = await blackhole();
    try {
      const a = mysqlAdapter({ host: '127.0.0.1', port: hole.port, user: 'root' }, { cancelTimeoutMs: 200 });
      const started = performance.now();
      await expect(a.cancel?.(conn)).resolves.toBeUndefined();
      expect(performance.now() - started).toBeLessThan(1_000);
      const serverSide = hole.sockets[0];
      if (serverSide !== undefined && !serverSide.destroyed) await once(serverSide, 'close');
    } finally {
      await hole.close();
    }
  });
});

describe('dialect', () => {
  it('builds BEGIN from a fixed table', () => {
    expect(mysqlDialect.begin({})).toEqual(['START TRANSACTION']);
    expect(mysqlDialect.begin({ readOnly: true })).toEqual(['START TRANSACTION READ ONLY']);
    expect(mysqlDialect.begin({ readOnly: false })).toEqual(['START TRANSACTION READ WRITE']);
    expect(mysqlDialect.begin({ isolation: 'read committed', readOnly: true })).toEqual([
      'SET TRANSACTION ISOLATION LEVEL READ COMMITTED',
      'START TRANSACTION READ ONLY',
    ]);
    expect(mysqlDialect.begin({ isolation: 'serializable', deferrable: false })).toEqual([
      'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
      'START TRANSACTION',
    ]);
    expect(mysqlDialect.begin({ isolation: 'read uncommitted' })[0]).toBe('SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED');
    expect(mysqlDialect.begin({ isolation: 'repeatable read' })[0]).toBe('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    expect(mysqlDialect.commit).toBe('COMMIT');
    expect(mysqlDialect.rollback).toBe('ROLLBACK');
  });

  it('rejects deferrable and unknown isolation levels with ConfigError', () => {
    expect(() => adapter.validateBegin({ deferrable: true })).toThrow(ConfigError);
    expect(() => mysqlDialect.begin({ deferrable: true })).toThrow(ConfigError);
    let thrown: unknown;
    try {
      mysqlDialect.begin({ isolation: 'snapshot; DROP TABLE x' as never });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).fields).toEqual(['isolation']);
    expect(() => adapter.validateBegin({ isolation: 'serializable', readOnly: true })).not.toThrow();
  });

  it('savepoint statements take only core-made names', () => {
    expect(mysqlDialect.savepoint('lp_sp_3')).toBe('SAVEPOINT lp_sp_3');
    expect(mysqlDialect.releaseSavepoint('lp_sp_3')).toBe('RELEASE SAVEPOINT lp_sp_3');
    expect(mysqlDialect.rollbackToSavepoint('lp_sp_3')).toBe('ROLLBACK TO SAVEPOINT lp_sp_3');
    for (const bad of ['1a', 'a-b', 'x; DROP TABLE t', '', 'A']) {
      expect(() => mysqlDialect.savepoint(bad)).toThrow(ConfigError);
      expect(() => mysqlDialect.rollbackToSavepoint(bad)).toThrow(ConfigError);
    }
  });

  it('classifies statements by what they do to the transaction', () => {
    const cases: [string, ReturnType<typeof classifyStatement>][] = [
      ['START TRANSACTION', 'begin'],
      ['start transaction read only', 'begin'],
      ['BEGIN', 'begin'],
      ['begin work;', 'begin'],
      ['BEGIN NOT ATOMIC SELECT 1; END', 'unknown'],
      ['COMMIT', 'end'],
      ['commit work', 'end'],
      ['ROLLBACK', 'end'],
      ['ROLLBACK TO SAVEPOINT lp_sp_1', 'none'],
      ['rollback work to lp_sp_1', 'none'],
      ['COMMIT AND CHAIN', 'begin'],
      ['COMMIT AND NO CHAIN', 'end'],
      ['COMMIT RELEASE', 'unknown'],
      ['COMMIT NO RELEASE', 'end'],
      ['SET autocommit=0', 'implicit_commit'],
      ['SET @@session.autocommit = 1', 'implicit_commit'],
      ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', 'none'],
      ['SET @x = 1', 'none'],
      ['CREATE TABLE t (id int)', 'implicit_commit'],
      ['alter table t add c int', 'implicit_commit'],
      ['DROP TABLE t', 'implicit_commit'],
      ['TRUNCATE t', 'implicit_commit'],
      ['RENAME TABLE a TO b', 'implicit_commit'],
      ['LOCK TABLES t WRITE', 'implicit_commit'],
      ['GRANT SELECT ON t TO u', 'implicit_commit'],
      ['SELECT 1', 'none'],
      ['  -- comment\n  INSERT INTO t VALUES (1)', 'none'],
      ['# comment\nUPDATE t SET a = 1', 'none'],
      ['/* c */ DELETE FROM t', 'none'],
      ['/*!40101 COMMIT */', 'unknown'],
      ['CALL proc()', 'unknown'],
      ['XA START "x"', 'unknown'],
      ['EXECUTE stmt', 'unknown'],
      ['SAVEPOINT lp_sp_1', 'none'],
      ['RELEASE SAVEPOINT lp_sp_1', 'none'],
      ['', 'unknown'],
    ];
    for (const [sql, effect] of cases) expect([sql, classifyStatement(sql)]).toEqual([sql, effect]);
    expect(classifyStatement('SELECT 1; COMMIT', true)).toBe('unknown');
    expect(classifyStatement("SELECT 'a;b';", true)).toBe('none');
    expect(classifyStatement('SELECT 1; COMMIT', false)).toBe('none'); // the server rejects it whole
    expect(classifyStatement("SELECT 1 -- it's\n; COMMIT", true)).toBe('unknown');
    expect(classifyStatement('SELECT 1 /* ; COMMIT */', true)).toBe('none');
    expect(classifyStatement('SELECT 1; /*!COMMIT */', true)).toBe('unknown');
    expect(classifyStatement('COMMIT WORK RELEASE')).toBe('unknown');
  });

  test('statements are classified once per text: the remembered answer is always classifyStatement\'s', () => {
    const texts = [
      ...mysqlDialect.begin({}),
      ...mysqlDialect.begin({ readOnly: true }),
      mysqlDialect.commit,
      mysqlDialect.rollback,
      'SELECT 1',
      'select 1; commit', // one statement or two, depending on multipleStatements
      'CREATE TABLE t (id int)',
      `SELECT '${'x'.repeat(2_000)}'`, // too long to remember
    ];
    for (let round = 0; round < 2; round++) {
      for (const sql of texts) {
        for (const multiple of [false, true]) expect([sql.slice(0, 40), multiple, statementEffect(sql, multiple)]).toEqual([sql.slice(0, 40), multiple, classifyStatement(sql, multiple)]);
      }
    }
    expect(statementEffect('select 1; commit', true)).toBe('unknown');
    expect(statementEffect('select 1; commit', false)).toBe('none');
    // More distinct texts than it remembers (texts with values in them): answers stay right.
    for (let i = 0; i < 1_500; i++) expect(statementEffect(i % 2 === 0 ? `SELECT ${i}` : `DROP TABLE t${i}`, false)).toBe(i % 2 === 0 ? 'none' : 'implicit_commit');
  });
});

describe('a connection string of another scheme fails at once, naming it', () => {
  it('mysqlAdapter given a postgres:// URL', () => {
    expect(() => mysqlAdapter('postgres://app:secret@127.0.0.1:5432/app')).toThrow(
      'config must be a mysql:// URL, not postgres:// (a PostgreSQL URL: use pgAdapter from leasepool/adapters/pg)',
    );
    expect(() => mysqlAdapter({ uri: 'http://127.0.0.1/app' })).toThrow('config.uri must be a mysql:// URL, not http://');
  });
});
