/**
 * The drop-in `Pool` of `leasepool/adapters/pg` against a real PostgreSQL (PG_URL), side by side
 * with node-postgres' own `pg.Pool` wherever the two must behave the same. Tables: `compat_pool_*`.
 */
import { execFile } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { inspect } from 'node:util';
import * as pg from 'pg';
import { Registry } from 'prom-client';
import { pgAdapter, Pool, type PgPoolConfig } from '../../adapters/pg';
import { ConfigError, ConnectError, LeaseReleasedError, LeaseTimeoutError } from '../../src/errors';
import { createPool } from '../../src/pool';
import { siteOf } from '../helpers/lifecycle';
import { pgPasswordServer } from '../helpers/pg-password-server';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const pgUrl = new URL(PG_URL);
const PG_HOST = pgUrl.hostname;
const PG_PORT = Number(pgUrl.port || 5432);
// Per process: two jest runs on one server (developers, CI) never share a table.
const TABLE = `compat_pool_items_${process.pid}`;
const APP_SCHEMA = `compat_pool_app_${process.pid}`;
const DOUBLE_RELEASE = 'Release called on client which has already been released to the pool.';

// Compile-time proof of the drop-in at type level: the facade is a pg.Pool, its class a typeof pg.Pool.
const asPgPool: (config: pg.PoolConfig) => pg.Pool = (config) => new Pool(config);
const PoolAsPg: typeof pg.Pool = Pool;
void asPgPool;
void PoolAsPg;

type Logged = { warn: jest.Mock; error: jest.Mock; info: jest.Mock; debug: jest.Mock };
const newLogger = (): Logged => ({ warn: jest.fn(), error: jest.fn(), info: jest.fn(), debug: jest.fn() });

const cleanups: (() => Promise<unknown> | unknown)[] = [];
let admin: pg.Client;
let log: Logged;

/** A leasepool pg Pool on the test database, ended after the test (end has a deadline: never hangs). */
function lpPool(config: PgPoolConfig = {}): Pool {
  const pool = new Pool({ connectionString: PG_URL, ...config, leasepool: { logger: log, endTimeoutMs: 2_000, ...config.leasepool } });
  cleanups.push(() => (pool.ending ? undefined : pool.end()));
  return pool;
}

/** node-postgres' own Pool with the same config (tests release everything they check out). */
function pgPool(config: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: PG_URL, ...config });
  pool.on('error', () => undefined);
  cleanups.push(() => (pool.ending ? undefined : pool.end()));
  return pool;
}

/** Both implementations, for behaviour that must be identical. */
const both: Array<[string, (config?: pg.PoolConfig & PgPoolConfig) => pg.Pool]> = [
  ['pg.Pool', (config) => pgPool(config)],
  ['leasepool Pool', (config) => lpPool(config)],
];

function record(pool: pg.Pool): string[] {
  const events: string[] = [];
  pool.on('connect', () => events.push('connect'));
  pool.on('acquire', () => events.push('acquire'));
  pool.on('release', (err) => events.push(err ? `release(${err instanceof Error ? 'err' : String(err)})` : 'release'));
  pool.on('remove', () => events.push('remove'));
  return events;
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string; client?: unknown }> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

function pidOf(client: pg.ClientBase): number {
  return (client as unknown as { processID: number }).processID;
}

/** A TCP server that accepts and never answers. */
async function blackhole(): Promise<{ port: number; accepted: () => number; close(): Promise<void> }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => sockets.length,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function terminate(pid: number): Promise<void> {
  await admin.query('SELECT pg_terminate_backend($1)', [pid]);
}

beforeAll(async () => {
  admin = new pg.Client(PG_URL);
  admin.on('error', () => undefined);
  await admin.connect();
  await admin.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await admin.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, note text)`);
});

beforeEach(async () => {
  log = newLogger();
  await admin.query(`TRUNCATE ${TABLE}`);
});

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await admin.end();
});

// -------------------------------------------------------------------------------------------------

describe('constructor options', () => {
  test("pg-pool's defaults in pool.options, the password kept but hidden", () => {
    const config = { host: PG_HOST, port: PG_PORT, user: pgUrl.username, password: 'hidden-pw-123', database: pgUrl.pathname.slice(1) };
    const ours = lpPool(config);
    const theirs = pgPool(config);
    for (const key of ['max', 'min', 'idleTimeoutMillis', 'maxUses', 'allowExitOnIdle', 'maxLifetimeSeconds'] as const) {
      expect([key, ours.options[key]]).toEqual([key, theirs.options[key]]);
    }
    expect(ours.options).toMatchObject({ max: 10, min: 0, idleTimeoutMillis: 10_000, maxUses: Infinity, allowExitOnIdle: false });
    expect(ours.options.password).toBe('hidden-pw-123');
    expect(JSON.stringify(ours.options)).not.toContain('hidden-pw-123');
    expect(inspect(ours, { depth: 5 })).not.toContain('hidden-pw-123');
    expect(Object.keys(ours.options)).not.toContain('password');
    expect(ours.Client).toBe(pg.Client);
    expect([ours.ending, ours.ended, ours.totalCount, ours.idleCount, ours.waitingCount, ours.expiredCount]).toEqual([false, false, 0, 0, 0, 0]);
  });

  test('values pg-pool would silently misuse are a ConfigError naming every field', () => {
    let err: unknown;
    try {
      new Pool({
        max: -1,
        idleTimeoutMillis: -5,
        connectionTimeoutMillis: 'soon' as unknown as number,
        maxUses: 1.5,
        onConnect: 42 as unknown as () => void,
        Promise: class Fake {} as unknown as PromiseConstructorLike,
        leasepool: { bogus: true } as unknown as PgPoolConfig['leasepool'],
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect([...(err as ConfigError).fields].sort()).toEqual(
      ['Promise', 'connectionTimeoutMillis', 'idleTimeoutMillis', 'leasepool.bogus', 'max', 'maxUses', 'onConnect'].sort(),
    );
  });
});

describe('pool.query', () => {
  test('promise forms give the same results as pg.Pool', async () => {
    const results: unknown[] = [];
    for (const [, make] of both) {
      const pool = make();
      const text = await pool.query('SELECT 1::int AS a');
      const values = await pool.query('SELECT $1::int + $2::int AS sum', [2, 3]);
      const config = await pool.query({ text: 'SELECT $1::text AS t', values: ['cfg'] });
      const array = await pool.query({ text: 'SELECT 1 AS x, 2 AS y', rowMode: 'array' });
      results.push([text.rows, values.rows, config.rows, array.rows, text.command, values.rowCount]);
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[1]).toEqual([[{ a: 1 }], [{ sum: 5 }], [{ t: 'cfg' }], [[1, 2]], 'SELECT', 1]);
  });

  test('callback forms (text, cb), (text, values, cb), (config, cb); errors through the callback', async () => {
    const pool = lpPool();
    const call = <T>(fn: (cb: (err: Error | undefined, res: T) => void) => unknown): Promise<{ returned: unknown; err: Error | undefined; res: T }> =>
      new Promise((resolve) => {
        let returned: unknown = 'not set';
        returned = fn((err, res) => resolve({ returned, err, res }));
      });
    const a = await call<pg.QueryResult>((cb) => pool.query('SELECT 1 AS one', cb));
    expect([a.returned, a.err, a.res.rows]).toEqual([undefined, undefined, [{ one: 1 }]]);
    const b = await call<pg.QueryResult>((cb) => pool.query('SELECT $1::int AS v', [7], cb));
    expect(b.res.rows).toEqual([{ v: 7 }]);
    const c = await call<pg.QueryResult>((cb) => pool.query({ text: 'SELECT $1::text AS v', values: ['x'] }, cb));
    expect(c.res.rows).toEqual([{ v: 'x' }]);
    const d = await call<pg.QueryResult>((cb) => pool.query('SELEC 1', cb));
    expect(d.err).toMatchObject({ code: '42601' });
  });

  test('a function as the first parameter: the same error as pg.Pool, through that function', async () => {
    for (const [, make] of both) {
      const pool = make();
      const err = await new Promise<Error>((resolve) => {
        (pool.query as unknown as (cb: (e: Error) => void) => void)(resolve);
      });
      expect(err.message).toBe('Passing a function as the first parameter to pool.query is not supported');
    }
  });

  test("a failed statement rejects with the server's error; 'release' gets it; the client is closed, as pg.Pool closes it", async () => {
    const ours = lpPool();
    const theirs = pgPool();
    const oursEvents = record(ours);
    const theirsEvents = record(theirs);
    const [e1, e2] = [await rejectionOf(ours.query('SELECT * FROM compat_pool_missing')), await rejectionOf(theirs.query('SELECT * FROM compat_pool_missing'))];
    expect([e1.code, e1.message, e1.constructor]).toEqual([e2.code, e2.message, e2.constructor]);
    await waitUntil('pg.Pool closed its client', () => theirsEvents.includes('remove'));
    expect(theirsEvents).toEqual(['connect', 'acquire', 'release(err)', 'remove']);
    // pg-pool's query() releases with the statement's error, which closes the client: same counts at once.
    expect([ours.totalCount, ours.idleCount]).toEqual([0, 0]);
    await waitUntil('the facade closed its client', () => oursEvents.includes('remove'));
    expect(oursEvents).toEqual(theirsEvents);
    await expect(ours.query('SELECT 1 AS ok')).resolves.toMatchObject({ rows: [{ ok: 1 }] });
  });

  test('a Submittable is refused with a pointer to connect() (pg.Pool would never release its client)', () => {
    const pool = lpPool();
    expect(() => pool.query(new pg.Query('SELECT 1') as unknown as string)).toThrow(/pool\.connect\(\)/);
  });

  test("a query pg refuses before sending (null): pg.Pool's TypeError; the pool goes on", async () => {
    const ours = lpPool({ max: 1 });
    const theirs = pgPool({ max: 1 });
    const oursEvents = record(ours);
    const theirsEvents = record(theirs);
    const [e1, e2] = [await rejectionOf(ours.query(null as unknown as string)), await rejectionOf(theirs.query(null as unknown as string))];
    expect([e1.constructor, e1.message]).toEqual([e2.constructor, e2.message]);
    // As pg.Pool: released with that error, so the client is closed; the next query gets a new one.
    expect([ours.totalCount, ours.idleCount]).toEqual([theirs.totalCount, theirs.idleCount]);
    await waitUntil('both closed their client', () => oursEvents.includes('remove') && theirsEvents.includes('remove'));
    expect(oursEvents).toEqual(theirsEvents);
    await expect(ours.query('SELECT 1 AS ok')).resolves.toMatchObject({ rows: [{ ok: 1 }] });
  });

  test('a statement still running when leaseTimeoutMs takes the client back is cancelled on the server', async () => {
    const pool = lpPool({ max: 1, leasepool: { leaseTimeoutMs: 200 } });
    const marker = `compat_reclaim_${process.pid}`;
    const running = async (): Promise<number> =>
      (await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1", [`%AS ${marker}%`])).rows[0].n;
    const statement = pool.query(`SELECT pg_sleep(30) AS ${marker}`);
    await waitUntil('the statement runs', async () => (await running()) === 1);
    await expect(statement).rejects.toBeInstanceOf(LeaseTimeoutError);
    // Without the cancel, closing the socket would leave pg_sleep running on the server for 30 s.
    await waitUntil('the server stopped it', async () => (await running()) === 0, 2_000);
    expect(pool.totalCount).toBe(0);
    await expect(pool.query('SELECT 1 AS ok')).resolves.toMatchObject({ rows: [{ ok: 1 }] });
  });
});

describe('pool.connect and client.release', () => {
  test('promise form: a client, released back; the same pg.Client next time', async () => {
    const pool = lpPool();
    const client = await pool.connect();
    expect(client).toBeInstanceOf(pg.Client);
    const pid = pidOf(client);
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect([pool.totalCount, pool.idleCount]).toEqual([1, 0]);
    expect(pool.stats()).toMatchObject({ size: 1, idle: 0, active: 1, pending: 0, max: 10 });
    client.release();
    await waitUntil('the client is idle', () => pool.idleCount === 1);
    const again = await pool.connect();
    expect(pidOf(again)).toBe(pid);
    again.release();
  });

  test('callback form: (err, client, done); done() releases', async () => {
    const pool = lpPool({ max: 1 });
    const { err, client, done } = await new Promise<{ err: Error | undefined; client: pg.PoolClient | undefined; done: (r?: Error | boolean) => void }>((resolve) =>
      pool.connect((e, c, d) => resolve({ err: e, client: c, done: d })),
    );
    expect(err).toBeUndefined();
    expect((await client?.query('SELECT 2 AS two'))?.rows).toEqual([{ two: 2 }]);
    done();
    await waitUntil('idle', () => pool.idleCount === 1);
    expect(() => done()).toThrow(DOUBLE_RELEASE);
  });

  test("releasing twice throws pg's own error, like pg.Pool", async () => {
    for (const [name, make] of both) {
      const pool = make();
      const client = await pool.connect();
      client.release();
      let err: unknown;
      try {
        client.release();
      } catch (e) {
        err = e;
      }
      expect([name, (err as Error).message]).toEqual([name, DOUBLE_RELEASE]);
    }
    const client = await lpPool().connect();
    const release = client.release; // extracted, as `done` is
    release();
    expect(() => release()).toThrow(LeaseReleasedError);
  });

  test("release(true) and release(err) close the client; 'release' gets the argument", async () => {
    const pool = lpPool();
    const events = record(pool);
    const released: unknown[] = [];
    pool.on('release', (err) => released.push(err));
    const a = await pool.connect();
    a.release(true);
    await waitUntil('removed', () => events.includes('remove'));
    const failure = new Error('client is suspicious');
    const b = await pool.connect();
    b.release(failure);
    await waitUntil('removed twice', () => events.filter((e) => e === 'remove').length === 2);
    expect(released).toEqual([true, failure]);
    expect(events).toEqual(['connect', 'acquire', 'release(true)', 'remove', 'connect', 'acquire', 'release(err)', 'remove']);
    expect(pool.totalCount).toBe(0);
  });

  test('a client used while it sits released in the pool: a warning with both stacks and a count (or a throw, if asked)', async () => {
    const warn = jest.fn();
    const pool = lpPool({ leasepool: { logger: { warn, error: jest.fn() } } });
    const client = await pool.connect();
    client.release();
    // As pg.Pool: the query runs (code relying on that keeps working), but it is reported.
    await expect(client.query('SELECT 1 AS ok')).resolves.toMatchObject({ rows: [{ ok: 1 }] });
    expect(pool.useAfterReleaseCount).toBe(1);
    expect(warn).toHaveBeenCalledTimes(1);
    const message = String(warn.mock.calls[0]?.[1]);
    expect(message).toMatch(/used after release\(\) while idle in the pool; used at:\n.*compat-pool\.test/s);
    expect(message).toMatch(/released at:\n.*compat-pool\.test/s);
    // Checked out again, the same client is in use, not misused.
    const again = await pool.connect();
    expect(again).toBe(client);
    await again.query('SELECT 1');
    expect(pool.useAfterReleaseCount).toBe(1);
    again.release();

    const strict = lpPool({ leasepool: { useAfterRelease: 'throw' } });
    const other = await strict.connect();
    other.release();
    expect(() => other.query('SELECT 1')).toThrow(LeaseReleasedError);
    expect(strict.useAfterReleaseCount).toBe(1);
  });

  test('a client released inside a transaction is rolled back first (pg.Pool hands the open transaction on)', async () => {
    for (const [name, make] of both) {
      await admin.query(`TRUNCATE ${TABLE}`);
      const pool = make({ max: 1 });
      const client = await pool.connect();
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${TABLE} VALUES (1, 'uncommitted')`);
      client.release(); // forgot COMMIT/ROLLBACK
      const next = await pool.connect();
      const status = next.getTransactionStatus();
      const { rows } = await next.query(`SELECT count(*)::int AS n FROM ${TABLE}`);
      if (status === 'T') await next.query('ROLLBACK'); // leave pg.Pool's connection clean
      next.release();
      if (name === 'pg.Pool') expect([name, status, rows]).toEqual([name, 'T', [{ n: 1 }]]);
      else expect([name, status, rows]).toEqual([name, 'I', [{ n: 0 }]]);
    }
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${TABLE}`);
    expect(rows).toEqual([{ n: 0 }]);
  });
});

describe('events and counts', () => {
  test('the same event sequence as pg.Pool', async () => {
    const sequences: string[][] = [];
    for (const [, make] of both) {
      const pool = make({ max: 2 });
      const events = record(pool);
      await pool.query('SELECT 1');
      const a = await pool.connect();
      const b = await pool.connect(); // a second client: 'connect' again
      a.release();
      b.release(true);
      await waitUntil('b removed', () => events.includes('remove'));
      await pool.end();
      sequences.push(events);
    }
    expect(sequences[1]).toEqual(sequences[0]);
    expect(sequences[0]).toEqual(['connect', 'acquire', 'release', 'acquire', 'connect', 'acquire', 'release', 'release(true)', 'remove', 'remove']);
  });

  test('acquire/release carry the client the caller holds; connect/remove the raw pg.Client', async () => {
    const pool = lpPool();
    const seen: Record<string, unknown> = {};
    pool.on('connect', (c) => (seen.connect = c));
    pool.on('acquire', (c) => (seen.acquire = c));
    pool.on('release', (_e, c) => (seen.release = c));
    pool.on('remove', (c) => (seen.remove = c));
    const client = await pool.connect();
    expect(seen.acquire).toBe(client);
    expect(pidOf(seen.connect as pg.ClientBase)).toBe(pidOf(client));
    client.release(true);
    expect(seen.release).toBe(client);
    await waitUntil('removed', () => seen.remove !== undefined);
    expect(seen.remove).toBe(seen.connect);
  });

  test('totalCount, idleCount, waitingCount through a busy pool, as pg.Pool counts them', async () => {
    const snapshots: number[][] = [];
    for (const [, make] of both) {
      const pool = make({ max: 2 });
      const counts = (): number[] => [pool.totalCount, pool.idleCount, pool.waitingCount];
      const snap: number[][] = [counts()];
      const a = await pool.connect();
      const b = await pool.connect();
      snap.push(counts());
      const waiting = pool.connect();
      await waitUntil('a waiter', () => pool.waitingCount === 1);
      snap.push(counts());
      a.release();
      const c = await waiting;
      snap.push(counts());
      b.release();
      c.release();
      await waitUntil('all idle', () => pool.idleCount === 2);
      snap.push(counts());
      snapshots.push(snap.flat());
    }
    expect(snapshots[1]).toEqual(snapshots[0]);
    expect(snapshots[0]).toEqual([0, 0, 0, 2, 0, 0, 2, 0, 1, 2, 0, 0, 2, 2, 0]);
  });

  test('a throwing listener is logged, never breaks the pool', async () => {
    const pool = lpPool();
    pool.on('acquire', () => {
      throw new Error('listener bug');
    });
    await expect(pool.query('SELECT 1 AS ok')).resolves.toMatchObject({ rows: [{ ok: 1 }] });
    expect(log.error).toHaveBeenCalledWith(expect.anything(), expect.stringContaining('listener bug'));
  });
});

describe('timeouts and limits', () => {
  test('connectionTimeoutMillis against a server that never answers: the pg.Pool error, in time', async () => {
    const hole = await blackhole();
    cleanups.push(() => hole.close());
    for (const [name, make] of both) {
      const pool = make({ connectionString: undefined, host: '127.0.0.1', port: hole.port, connectionTimeoutMillis: 300 });
      const started = Date.now();
      const err = await rejectionOf(pool.connect());
      expect([name, err.message]).toEqual([name, 'Connection terminated due to connection timeout']);
      expect(Date.now() - started).toBeLessThan(2_500);
      expect(pool.totalCount).toBe(0);
    }
    expect(hole.accepted()).toBeGreaterThanOrEqual(2);
  });

  test('connectionTimeoutMillis while every client is checked out: the pg.Pool error', async () => {
    for (const [name, make] of both) {
      const pool = make({ max: 1, connectionTimeoutMillis: 200 });
      const held = await pool.connect();
      const err = await rejectionOf(pool.query('SELECT 1'));
      expect([name, err.message]).toEqual([name, 'timeout exceeded when trying to connect']);
      expect(pool.waitingCount).toBe(0);
      held.release();
    }
  });

  test('connectionTimeoutMillis 0 (the default): a waiter waits as long as it takes', async () => {
    const pool = lpPool({ max: 1 });
    const held = await pool.connect();
    let settled = false;
    const waiting = pool.connect().finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 300));
    expect([settled, pool.waitingCount]).toEqual([false, 1]);
    held.release();
    (await waiting).release();
  });

  test('idleTimeoutMillis closes idle clients; 0 keeps them', async () => {
    const pool = lpPool({ idleTimeoutMillis: 200 });
    const events = record(pool);
    await pool.query('SELECT 1');
    expect(pool.idleCount).toBe(1);
    await waitUntil('the idle client is removed', () => events.includes('remove'), 3_000);
    expect(pool.totalCount).toBe(0);

    const keep = lpPool({ idleTimeoutMillis: 0 });
    await keep.query('SELECT 1');
    await new Promise((r) => setTimeout(r, 400));
    expect([keep.totalCount, keep.idleCount]).toEqual([1, 1]);
  });

  test('min: idle clients above min are closed, min are kept; none is opened ahead of use (as pg.Pool)', async () => {
    const ends: Array<[number, number]> = [];
    for (const [name, make] of both) {
      const pool = make({ min: 2, idleTimeoutMillis: 200 });
      const events = record(pool);
      await new Promise((r) => setTimeout(r, 50));
      expect([name, pool.totalCount]).toEqual([name, 0]);
      const clients = await Promise.all([pool.connect(), pool.connect(), pool.connect()]);
      expect(pool.totalCount).toBe(3);
      for (const client of clients) client.release();
      await waitUntil(`${name}: the client above min is removed`, () => events.includes('remove'), 3_000);
      await new Promise((r) => setTimeout(r, 400)); // two more idle timeouts: nothing else goes
      ends.push([pool.totalCount, pool.idleCount]);
    }
    expect(ends).toEqual([
      [2, 2],
      [2, 2],
    ]);
  });

  test('maxUses: a client is replaced after that many checkouts', async () => {
    const pool = lpPool({ max: 1, maxUses: 2 });
    const events = record(pool);
    const pids: number[] = [];
    for (let i = 0; i < 4; i++) pids.push((await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ?? 0);
    expect(pids[0]).toBe(pids[1]);
    expect(pids[2]).toBe(pids[3]);
    expect(pids[2]).not.toBe(pids[0]);
    await waitUntil('two removed', () => events.filter((e) => e === 'remove').length === 2);
    expect(events.filter((e) => e === 'connect')).toHaveLength(2);
  });

  test('maxLifetimeSeconds: expiredCount, and the client is closed at release', async () => {
    const pool = lpPool({ maxLifetimeSeconds: 0.3 });
    const events = record(pool);
    const client = await pool.connect();
    expect(pool.expiredCount).toBe(0);
    await waitUntil('the held client expires', () => pool.expiredCount === 1, 3_000);
    client.release();
    await waitUntil('it is closed', () => events.includes('remove'));
    expect([pool.totalCount, pool.expiredCount]).toEqual([0, 0]);
  });
});

describe('Client, onConnect, verify, allowExitOnIdle', () => {
  test('a custom Client class is used for every connection', async () => {
    class TaggedClient extends pg.Client {
      readonly tag = 'tagged';
    }
    const pool = lpPool({ Client: TaggedClient });
    let connected: unknown;
    pool.on('connect', (c) => (connected = c));
    const client = await pool.connect();
    expect(connected).toBeInstanceOf(TaggedClient);
    expect(client).toBeInstanceOf(TaggedClient);
    expect((client as unknown as TaggedClient).tag).toBe('tagged');
    expect(pool.Client).toBe(TaggedClient);
    client.release();
  });

  test("log receives pg-pool's lines: a new client connected, ending", async () => {
    const lines: string[] = [];
    const pool = new Pool({ connectionString: PG_URL, log: (...messages: unknown[]) => lines.push(String(messages[0])) });
    await pool.query('SELECT 1');
    expect(lines).toContain('new client connected');
    expect(lines).not.toContain('ending');
    await pool.end();
    expect(lines.indexOf('ending')).toBeGreaterThan(lines.indexOf('new client connected'));
  });

  test('onConnect runs on each new client before it is used, and before the connect event', async () => {
    const order: string[] = [];
    const pool = lpPool({
      max: 2,
      onConnect: async (client) => {
        order.push('onConnect');
        await client.query("SET application_name = 'compat-pool-onconnect'");
      },
    });
    pool.on('connect', () => order.push('connect'));
    pool.on('acquire', () => order.push('acquire'));
    const { rows } = await pool.query('SHOW application_name');
    expect(rows).toEqual([{ application_name: 'compat-pool-onconnect' }]);
    expect(order).toEqual(['onConnect', 'connect', 'acquire']);
  });

  test('a failing onConnect fails that connect with its error and closes the client', async () => {
    for (const [name, make] of both) {
      const pool = make({ onConnect: () => Promise.reject(new Error('hook says no')) });
      const events = record(pool);
      const err = await rejectionOf(pool.connect());
      expect([name, err.message, pool.totalCount, events]).toEqual([name, 'hook says no', 0, []]);
    }
  });

  test('verify: a new client that fails it is closed, and the checkout fails', async () => {
    const pool = lpPool({ verify: (_client, done) => done(new Error('not verified')) });
    const err = await rejectionOf(pool.connect());
    expect(err.message).toBe('not verified');
    expect(pool.totalCount).toBe(0);
  });

  const child = (args: string[], killAfterMs: number): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; ms: number }> =>
    new Promise((resolve) => {
      const started = Date.now();
      execFile(
        process.execPath,
        ['--import', 'tsx', path.join(__dirname, 'fixtures', 'compat-pool-child.ts'), ...args],
        { cwd: path.join(__dirname, '..', '..'), env: { ...process.env, PG_URL }, timeout: killAfterMs },
        (error, stdout, stderr) =>
          resolve({
            code: error === null ? 0 : typeof error.code === 'number' ? error.code : null,
            signal: error?.signal ?? null,
            stdout,
            stderr,
            ms: Date.now() - started,
          }),
      );
    });

  test('allowExitOnIdle: an idle pool does not keep the process alive (and without it, it does)', async () => {
    const [exits, stays] = await Promise.all([child(['exit-on-idle', 'facade', '1'], 20_000), child(['exit-on-idle', 'facade', '0'], 6_000)]);
    expect(exits).toMatchObject({ code: 0, signal: null });
    expect(exits.stdout).toContain('queried 1');
    // Without allowExitOnIdle the idle client (idleTimeoutMillis 10 s) holds the process until killed.
    expect(stays.stdout).toContain('queried 1');
    expect(stays.signal).toBe('SIGTERM');
  }, 30_000);

  test("an idle client's error with no 'error' listener: pg.Pool crashes the process, leasepool logs it", async () => {
    const [theirs, ours] = await Promise.all([child(['idle-error', 'pg'], 20_000), child(['idle-error', 'facade'], 20_000)]);
    expect(theirs.code).not.toBe(0);
    expect(theirs.stderr).toContain("Unhandled 'error' event");
    expect(theirs.stdout).not.toContain('survived');
    expect(ours.code).toBe(0);
    expect(ours.stdout).toContain('logged: idle pg client failed');
    expect(ours.stdout).toContain('survived 2');
  }, 30_000);
});

describe('connection errors', () => {
  test('connection refused: the same error as pg.Pool (code ECONNREFUSED)', async () => {
    const hole = await blackhole();
    const port = hole.port;
    await hole.close();
    const errors: Array<{ code?: string; message: string }> = [];
    for (const [, make] of both) {
      const err = await rejectionOf(make({ connectionString: undefined, host: '127.0.0.1', port }).query('SELECT 1'));
      errors.push({ code: err.code, message: err.message });
    }
    expect(errors[1]).toEqual(errors[0]);
    expect(errors[0]?.code).toBe('ECONNREFUSED');
  });

  test('connect(cb) when the server refuses: cb(err) with no client, as pg.Pool calls it', async () => {
    const hole = await blackhole();
    const port = hole.port;
    await hole.close();
    const seen: Array<{ code?: string; message: string; client: unknown; done: string }> = [];
    for (const [, make] of both) {
      const pool = make({ connectionString: undefined, host: '127.0.0.1', port });
      seen.push(
        await new Promise((resolve) =>
          pool.connect((err, client, done) => resolve({ code: (err as { code?: string } | undefined)?.code, message: String(err?.message), client, done: typeof done })),
        ),
      );
      expect([pool.totalCount, pool.idleCount, pool.waitingCount]).toEqual([0, 0, 0]);
    }
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[0]).toMatchObject({ code: 'ECONNREFUSED', client: undefined });
  });

  test('a role that does not exist: the same server error as pg.Pool (28000)', async () => {
    const errors: Array<{ code?: string; message: string }> = [];
    for (const [, make] of both) {
      const err = await rejectionOf(make({ connectionString: undefined, host: PG_HOST, port: PG_PORT, database: pgUrl.pathname.slice(1), user: 'compat_pool_no_such_role' }).connect());
      errors.push({ code: err.code, message: err.message });
    }
    expect(errors[1]).toEqual(errors[0]);
    expect(errors[0]?.code).toBe('28000');
  });

  test('a wrong password: 28P01, and the password appears nowhere (even when the server echoes it)', async () => {
    const srv = await pgPasswordServer();
    cleanups.push(() => srv.close());
    const password = 'S3cr@t-compat/pw';
    const pool = lpPool({ connectionString: undefined, host: '127.0.0.1', port: srv.port, user: 'lp_pw_user', password, database: 'lpdb' });
    const err = await rejectionOf(pool.query('SELECT 1'));
    expect(srv.received).toEqual([password]);
    expect(err.code).toBe('28P01');
    expect(err.message).toContain('password authentication failed');
    const surfaces = [err.message, err.stack ?? '', inspect(err, { depth: 10 }), JSON.stringify(err), JSON.stringify(log.warn.mock.calls), inspect(log.warn.mock.calls, { depth: 10 })];
    for (const surface of surfaces) expect(surface).not.toContain(password);
  });

  test("an idle client ended by the server: 'error' (err, client) with the raw client, then 'remove'; the pool goes on", async () => {
    const pool = lpPool();
    const events = record(pool);
    let connected: pg.PoolClient | undefined;
    pool.on('connect', (c) => (connected = c));
    const errors: Array<[Error & { code?: string; client?: unknown }, unknown]> = [];
    pool.on('error', (err, client) => errors.push([err, client]));
    await pool.query('SELECT 1');
    await terminate(pidOf(connected as pg.PoolClient));
    await waitUntil("the pool's error event", () => errors.length === 1);
    const [err, client] = errors[0] as [Error & { code?: string; client?: unknown }, unknown];
    expect(err.code).toBe('57P01');
    expect(client).toBe(connected);
    expect(err.client).toBe(connected);
    await waitUntil('removed', () => events.includes('remove'));
    expect(pool.totalCount).toBe(0);
    expect(log.error).not.toHaveBeenCalled();
    await expect(pool.query('SELECT 2 AS two')).resolves.toMatchObject({ rows: [{ two: 2 }] });
  });

  test('a checked-out client ended by the server: its next query fails, nothing crashes, release closes it', async () => {
    const pool = lpPool();
    const events = record(pool);
    const poolErrors: unknown[] = [];
    pool.on('error', (err) => poolErrors.push(err));
    const client = await pool.connect();
    await terminate(pidOf(client));
    await waitUntil('the failure is logged', () => log.error.mock.calls.length === 1);
    expect(log.error.mock.calls[0]?.[1]).toContain('checked out');
    await expect(client.query('SELECT 1')).rejects.toThrow(/not queryable|terminat/i);
    expect(poolErrors).toEqual([]); // like pg.Pool: a checked-out client's error is its holder's
    client.release();
    await waitUntil('removed', () => events.includes('remove'));
    expect(pool.totalCount).toBe(0);
  });
});

describe('leasepool on top', () => {
  test('a client held too long is reported with the stack that checked it out, and its return too', async () => {
    const pool = lpPool({ leasepool: { leakDetectionMs: 100 } });
    const here = new Error(); const client = await pool.connect();
    await waitUntil('a leak warning', () => log.warn.mock.calls.length > 0, 3_000);
    const warning = String(log.warn.mock.calls[0]?.[1]);
    expect(warning).toMatch(/held for \d+ ms/);
    expect(warning).toContain(`${siteOf(here)}:`); // the file and line of pool.connect() above
    client.release();
    await waitUntil('the return is reported', () => log.warn.mock.calls.some((c) => /returned after/.test(String(c[1]))));
  });

  test('leaseTimeoutMs takes a client back: further use fails with the error of pg itself; the first release() is fine, the second is pg’s error', async () => {
    const pool = lpPool({ leasepool: { leaseTimeoutMs: 150 } });
    const events = record(pool);
    const client = await pool.connect();
    await waitUntil('reclaimed', () => events.includes('remove'), 3_000);
    // The client itself was handed out (as pg.Pool does): taken back, it is closed, and pg says so.
    await expect(client.query('SELECT 1')).rejects.toThrow('Client was closed and is not queryable');
    expect(() => client.release()).not.toThrow();
    expect(() => client.release()).toThrow(DOUBLE_RELEASE);
    await expect(pool.query('SELECT 1 AS ok')).resolves.toMatchObject({ rows: [{ ok: 1 }] });
  });

  test('withTx: commit, rollback on throw, and pool.query inside it runs in the transaction', async () => {
    const pool = lpPool({ max: 1 });
    await pool.withTx(async (client) => {
      await client.query(`INSERT INTO ${TABLE} VALUES (1, 'kept')`);
    });
    const boom = new Error('boom');
    const err = await rejectionOf(
      pool.withTx(async () => {
        await pool.query(`INSERT INTO ${TABLE} VALUES (2, 'undone')`); // same client, same transaction (max is 1)
        expect((await pool.query(`SELECT count(*)::int AS n FROM ${TABLE}`)).rows).toEqual([{ n: 2 }]);
        throw boom;
      }),
    );
    expect(err).toBe(boom);
    expect((await admin.query(`SELECT id FROM ${TABLE} ORDER BY id`)).rows).toEqual([{ id: 1 }]);
  });

  test('metrics in the registry given', async () => {
    const registry = new Registry();
    const pool = lpPool({ leasepool: { metrics: { registry }, name: 'compat_pool_metrics' } });
    await pool.query('SELECT 1');
    const text = await registry.metrics();
    expect(text).toMatch(/leasepool_acquires_total\{pool="compat_pool_metrics",outcome="success"\} 1/);
    expect(text).toMatch(/leasepool_connections_created_total\{pool="compat_pool_metrics"\} 1/);
  });
});

describe('pool.end', () => {
  test("promise and callback forms; a second end and any later use fail with pg's messages", async () => {
    for (const [name, make] of both) {
      const pool = make();
      await pool.query('SELECT 1');
      const ending = pool.end();
      expect(pool.ending).toBe(true);
      await ending;
      expect([name, pool.ending, pool.ended, pool.totalCount]).toEqual([name, true, true, 0]);
      expect([name, (await rejectionOf(pool.end())).message]).toEqual([name, 'Called end on pool more than once']);
      expect([name, (await rejectionOf(pool.connect())).message]).toEqual([name, 'Cannot use a pool after calling end on the pool']);
      expect([name, (await rejectionOf(pool.query('SELECT 1'))).message]).toEqual([name, 'Cannot use a pool after calling end on the pool']);
    }
    const pool = lpPool();
    await pool.query('SELECT 1');
    await new Promise<void>((resolve) => pool.end(resolve));
    expect(pool.ended).toBe(true);
  });

  test('end() waits for checked-out clients up to leasepool.endTimeoutMs, then takes them back', async () => {
    const pool = lpPool({ leasepool: { endTimeoutMs: 200 } });
    const client = await pool.connect();
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${TABLE} VALUES (3, 'abandoned')`);
    const started = Date.now();
    await pool.end();
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(pool.ended).toBe(true);
    await expect(client.query('SELECT 1')).rejects.toThrow('Client was closed and is not queryable');
    expect((await admin.query(`SELECT count(*)::int AS n FROM ${TABLE}`)).rows).toEqual([{ n: 0 }]);
  });

  test('a caller waiting for a client when end() is called gets an error instead of waiting forever', async () => {
    const pool = lpPool({ max: 1, leasepool: { endTimeoutMs: 100 } });
    const held = await pool.connect();
    const waiting = rejectionOf(pool.connect());
    await waitUntil('a waiter', () => pool.waitingCount === 1);
    await pool.end();
    expect((await waiting).message).toBe('Cannot use a pool after calling end on the pool');
    expect(() => held.release()).not.toThrow();
  });
});

describe('an application written for pg.Pool, ported by changing only the import', () => {
  type App = typeof import('./fixtures/app-on-pg-pool');

  /** Load the fixture in its own module registry; with `facade`, its `import { Pool } from 'pg'` resolves to leasepool's. */
  function loadApp(facade: boolean): App {
    let app: App | undefined;
    jest.isolateModules(() => {
      if (facade) jest.doMock('pg', () => ({ ...jest.requireActual<typeof pg>('pg'), Pool }));
      else jest.dontMock('pg');
      app = require('./fixtures/app-on-pg-pool') as App;
    });
    jest.dontMock('pg');
    return app as App;
  }

  async function exercise(app: App): Promise<unknown> {
    const out: Record<string, unknown> = {};
    await app.setup({ 1: 100, 2: 50, 3: 0 });
    await app.transfer(1, 2, 30);
    out.afterTransfer = await app.balances();
    const refused = await rejectionOf(app.transfer(3, 1, 10));
    out.refused = [refused.constructor.name, refused.message];
    out.afterRefused = await app.balances();
    // Concurrent transfers through a pool of 3: queueing, row locks, no deadlock.
    await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? app.transfer(1, 2, 1) : app.transfer(2, 1, 2))));
    out.afterConcurrent = await app.balances();
    out.balanceCb = await new Promise((resolve, reject) => app.balanceOf(2, (err, b) => (err ? reject(err) : resolve(b))));
    out.countCb = await new Promise((resolve, reject) => app.countAccounts((err, n) => (err ? reject(err) : resolve(n))));
    const missing = await new Promise<Error | undefined>((resolve) => app.pool.query('SELECT nope FROM compat_pool_app_accounts', (err: Error | undefined) => resolve(err)));
    out.queryError = (missing as { code?: string } | undefined)?.code;
    const counts = app.counts();
    out.settled = counts.waiting === 0 && counts.idle === counts.total && counts.total <= 3;
    await app.teardown();
    out.ended = app.pool.ended;
    return out;
  }

  test('the same observable results on pg.Pool and on leasepool', async () => {
    // The app's own (unqualified) table lives in a schema of this process: only its URL is ours.
    await admin.query(`CREATE SCHEMA IF NOT EXISTS ${APP_SCHEMA}`);
    cleanups.push(() => admin.query(`DROP SCHEMA IF EXISTS ${APP_SCHEMA} CASCADE`));
    const url = new URL(PG_URL);
    url.searchParams.set('options', `-c search_path=${APP_SCHEMA}`);
    process.env.APP_DATABASE_URL = url.toString();
    const real = loadApp(false);
    const ported = loadApp(true);
    expect(real.pool).not.toBeInstanceOf(Pool); // pg's own BoundPool
    expect(real.pool.constructor.name).toBe('BoundPool');
    expect(ported.pool).toBeInstanceOf(Pool);
    const expected = await exercise(real);
    const actual = await exercise(ported);
    expect(actual).toEqual(expected);
    expect(expected).toEqual({
      afterTransfer: { 1: 70, 2: 80, 3: 0 },
      refused: ['InsufficientFunds', 'insufficient funds in account 3'],
      afterRefused: { 1: 70, 2: 80, 3: 0 },
      afterConcurrent: { 1: 76, 2: 74, 3: 0 },
      balanceCb: 74,
      countCb: 3,
      queryError: '42703',
      settled: true,
      ended: true,
    });
  });
});

describe('the pgAdapter options behind the facade', () => {
  test('Client, onConnect and allowExitOnIdle are validated', () => {
    let err: unknown;
    try {
      pgAdapter(PG_URL, { Client: 'pg.Client' as unknown as undefined, onConnect: 1 as unknown as undefined, allowExitOnIdle: 'yes' as unknown as boolean });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect([...(err as ConfigError).fields].sort()).toEqual(['Client', 'allowExitOnIdle', 'onConnect']);
  });

  test('with createPool: conn.release(true) destroys, a failing onConnect is a ConnectError with the hook error as cause', async () => {
    const pool = createPool(pgAdapter(PG_URL), { logger: log, leakDetectionMs: 0 });
    cleanups.push(() => pool.close({ timeoutMs: 1_000 }));
    const lease = await pool.acquire();
    await (lease.conn as unknown as pg.PoolClient).release(true);
    await waitUntil('destroyed', () => pool.stats().size === 0);

    const failing = createPool(pgAdapter(PG_URL, { onConnect: () => Promise.reject(Object.assign(new Error('no search_path'), { code: 'HOOK' })) }), {
      logger: log,
      leakDetectionMs: 0,
    });
    cleanups.push(() => failing.close({ timeoutMs: 1_000 }));
    const err = await rejectionOf(failing.acquire());
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.message).toContain('onConnect failed');
    expect((err.cause as { message?: string; code?: string })).toMatchObject({ message: 'no search_path', code: 'HOOK' });
    expect(failing.stats().size).toBe(0);
  });
});
