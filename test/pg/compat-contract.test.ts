/**
 * The pg.Pool contract that node-postgres' own pg-pool test suite relies on, stated in this
 * project's words and checked on the drop-in `Pool` against the real PostgreSQL — most of them on
 * pg.Pool too, side by side, so a test fails the moment the two diverge.
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as pg from 'pg';
import { Registry } from 'prom-client';
import { Pool, type PgPoolConfig } from '../../adapters/pg';
import { delay, metric, waitFor } from '../helpers/lifecycle';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

type Logged = { warn: jest.Mock; error: jest.Mock; info: jest.Mock; debug: jest.Mock };
const quietLogger = (): Logged => ({ warn: jest.fn(), error: jest.fn(), info: jest.fn(), debug: jest.fn() });

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function lpPool(config: PgPoolConfig = {}): Pool {
  const pool = new Pool({ connectionString: PG_URL, ...config, leasepool: { logger: quietLogger(), endTimeoutMs: 2_000, ...config.leasepool } });
  cleanups.push(() => (pool.ending ? undefined : pool.end()));
  return pool;
}

function pgPool(config: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: PG_URL, ...config });
  cleanups.push(() => (pool.ending ? undefined : pool.end()));
  return pool;
}

const both: Array<[string, (config?: pg.PoolConfig & PgPoolConfig) => pg.Pool]> = [
  ['pg.Pool', (config) => pgPool(config)],
  ['leasepool', (config) => lpPool(config)],
];

/** A pg.Client class whose first `failures` connects fail after `delayMs` with `error`; the next one connects for real after `slowMs`, later ones at once. */
function flakyClient(error: Error, failures: number, delayMs: number, slowMs = 0): typeof pg.Client {
  let attempts = 0;
  return class Flaky extends pg.Client {
    constructor(config?: pg.ClientConfig) {
      super(config);
      const realConnect = pg.Client.prototype.connect as (this: pg.Client, cb: (err: Error) => void) => void;
      const attempt = attempts++;
      // Only the callback form is used by the pools.
      (this as unknown as { connect: (cb: (err: Error) => void) => void }).connect = (cb) => {
        if (attempt < failures) setTimeout(() => cb(error), delayMs);
        else setTimeout(() => realConnect.call(this, cb), attempt === failures ? slowMs : 0);
      };
    }
  };
}

describe('the client handed out', () => {
  test.each(both)('%s: checking out the same connection again gives the same client object, with release on it', async (_name, make) => {
    const pool = make({ max: 1 });
    const first = await pool.connect();
    const pid = (first as unknown as { processID: number }).processID;
    expect(typeof pid).toBe('number');
    expect(first).toBeInstanceOf(pg.Client);
    expect(typeof first.release).toBe('function');
    first.release();
    const second = await pool.connect();
    expect(second).toBe(first);
    expect((second as unknown as { processID: number }).processID).toBe(pid);
    expect((second as unknown as { connectionParameters: { database: string } }).connectionParameters.database).toBe(new URL(PG_URL).pathname.slice(1));
    const { rows } = await second.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    expect(rows[0]?.pid).toBe(pid);
    second.release();
  });

  test.each(both)("%s: the client of 'connect', of 'acquire' and of the caller are one object; pg options reach it", async (_name, make) => {
    const pool = make({ binary: true } as pg.PoolConfig);
    const seen: unknown[] = [];
    pool.on('connect', (client) => seen.push(client));
    pool.on('acquire', (client) => seen.push(client));
    const client = await pool.connect();
    expect(seen).toEqual([client, client]);
    expect(seen[0]).toBe(client);
    expect((client as unknown as { binary: boolean }).binary).toBe(true);
    client.release();
  });

  test.each(both)('%s: a release function from an earlier checkout throws, and does not release the current one', async (_name, make) => {
    const pool = make({ max: 1 });
    const client = await pool.connect();
    const oldRelease = client.release;
    oldRelease();
    const again = await pool.connect();
    expect(() => oldRelease()).toThrow('Release called on client which has already been released to the pool.');
    expect([pool.totalCount, pool.idleCount]).toEqual([1, 0]);
    again.release();
    expect(pool.idleCount).toBe(1);
  });
});

describe('errors are the objects pg produced', () => {
  test.each(both)('%s: a failing statement rejects with the very error pg handed its callback', async (_name, make) => {
    const pool = make();
    const client = await pool.connect();
    const direct = await client.query('SELECT 1/0').catch((err: unknown) => err);
    client.release();
    const viaPool = await pool.query('SELECT 1/0').catch((err: unknown) => err);
    expect(viaPool).toBeInstanceOf(pg.DatabaseError);
    expect((viaPool as pg.DatabaseError).code).toBe((direct as pg.DatabaseError).code);
  });

  test.each(both)('%s: a connect failure reaches the caller as the same object the client produced', async (_name, make) => {
    const failure = new Error('Temporary connection failure');
    const pool = make({ Client: flakyClient(failure, 1, 10), max: 1 } as pg.PoolConfig);
    await expect(pool.connect()).rejects.toBe(failure);
    const { rows } = await pool.query<{ ok: number }>('SELECT 1 AS ok');
    expect(rows).toEqual([{ ok: 1 }]);
  });

  test.each(both)('%s: onConnect and verify failures reach the caller as the thrown object', async (_name, make) => {
    const hookError = new Error('hook says no');
    const hooked = make({ onConnect: () => Promise.reject(hookError) } as pg.PoolConfig);
    await expect(hooked.connect()).rejects.toBe(hookError);
    const verifyError = new Error('nope');
    const verified = make({ verify: (_client: pg.PoolClient, cb: (err?: Error) => void) => cb(verifyError) } as pg.PoolConfig);
    await expect(verified.connect()).rejects.toBe(verifyError);
  });

  test.each(both)('%s: a Client whose connect fails: no connect event, and the error message as it was', async (_name, make) => {
    const MockClient = function (this: unknown) {
      const client = new EventEmitter() as EventEmitter & { connect: (cb: (err: Error) => void) => void };
      client.connect = (cb) => process.nextTick(cb, new Error('bad news'));
      return client;
    } as unknown as typeof pg.Client;
    const pool = make({ Client: MockClient } as pg.PoolConfig);
    const connects = jest.fn();
    pool.on('connect', connects);
    await expect(pool.connect()).rejects.toThrow('bad news');
    expect(connects).not.toHaveBeenCalled();
    expect(pool.totalCount).toBe(0);
  });
});

describe('end()', () => {
  test.each(both)('%s: queries issued before end(), even in the same tick, finish; later calls get the ended error', async (_name, make) => {
    const pool = make({ max: 20 });
    let completed = 0;
    const queries = Array.from({ length: 20 }, () => pool.query('SELECT pg_sleep(0.02)').then(() => completed++));
    await pool.end();
    expect(completed).toBe(20);
    await Promise.all(queries);
    const ended = 'Cannot use a pool after calling end on the pool';
    await expect(pool.query('SELECT 1')).rejects.toThrow(ended);
    await expect(pool.connect()).rejects.toThrow(ended);
    const viaCallback = await new Promise<Error | undefined>((resolve) => pool.query('SELECT 1', (err) => resolve(err)));
    expect(viaCallback?.message).toBe(ended);
    await expect(pool.end()).rejects.toThrow('Called end on pool more than once');
  });

  test('leasepool: a connect() queued behind a full pool before end() still gets its client (pg.Pool leaves it waiting)', async () => {
    const pool = lpPool({ max: 1 });
    const held = await pool.connect();
    const queued = pool.connect();
    const ended = pool.end();
    held.release();
    const client = await queued;
    expect(client).toBe(held);
    await expect(client.query('SELECT 1 AS ok')).resolves.toMatchObject({ rows: [{ ok: 1 }] });
    client.release();
    await ended;
    expect([pool.ended, pool.totalCount]).toEqual([true, 0]);
  });

  test('leasepool: end() with a client still checked out waits for its release, then finishes', async () => {
    const pool = lpPool();
    const client = await pool.connect();
    const ended = pool.end();
    await delay(50);
    expect(pool.ended).toBe(false);
    await client.query('SELECT 1');
    client.release();
    await ended;
    expect(pool.ended).toBe(true);
  });
});

describe('counts at every moment', () => {
  test.each(both)('%s: a client counts from the moment it starts connecting; a failed connect leaves nothing counted', async (_name, make) => {
    const pool = make();
    const query = pool.query('SELECT 1');
    expect([pool.totalCount, pool.idleCount, pool.waitingCount]).toEqual([1, 0, 0]);
    await query;
    expect([pool.totalCount, pool.idleCount]).toEqual([1, 1]);
    const refused = make({ connectionString: 'postgres://postgres@127.0.0.1:1/nothing' });
    await expect(refused.query('SELECT 1')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(refused.totalCount).toBe(0);
  });

  test.each(both)('%s: release(err), release(true), an ended client and a failed query are uncounted at once', async (_name, make) => {
    const pool = make({ max: 3 });
    const [a, b, c] = await Promise.all([pool.connect(), pool.connect(), pool.connect()]);
    expect(pool.totalCount).toBe(3);
    a.release(new Error('broken'));
    expect(pool.totalCount).toBe(2);
    b.release(true);
    expect(pool.totalCount).toBe(1);
    void c.end();
    c.release();
    expect([pool.totalCount, pool.idleCount]).toEqual([0, 0]);
    await expect(pool.query('SELECT nonsense_column')).rejects.toMatchObject({ code: '42703' });
    expect([pool.totalCount, pool.idleCount]).toEqual([0, 0]);
  });

  test.each(both)('%s: a client whose connection dropped is closed at release; the pool goes on', async (_name, make) => {
    const pool = make({ max: 1 });
    const client = await pool.connect();
    const failed = new Promise((resolve) => client.once('error', resolve));
    (client as unknown as { connection: { end(): void } }).connection.end();
    await failed;
    expect([pool.totalCount, pool.idleCount]).toEqual([1, 0]);
    client.release();
    expect([pool.totalCount, pool.idleCount]).toEqual([0, 0]);
    await expect(pool.query('SELECT 1 AS ok')).resolves.toMatchObject({ rows: [{ ok: 1 }] });
  });

  test.each(both)('%s: waitingCount counts callers waiting for a client to come back; maxUses retires it at once', async (_name, make) => {
    const pool = make({ max: 1, maxUses: 2 });
    const first = await pool.connect();
    expect(pool.waitingCount).toBe(0);
    const second = pool.connect();
    const third = pool.connect();
    expect(pool.waitingCount).toBe(2);
    first.release(); // use 1: goes to the next caller
    const again = await second;
    expect(again).toBe(first);
    expect(pool.waitingCount).toBe(1);
    again.release(); // use 2: retired, the third caller gets a new client
    expect((again as unknown as { _ending: boolean })._ending).toBe(true);
    const fresh = await third;
    expect(fresh).not.toBe(first);
    expect(pool.waitingCount).toBe(0);
    fresh.release();
  });

  test('leasepool: a client closed for a failed statement or release(true) is routine recycling in the metrics, a dropped one is broken', async () => {
    const registry = new Registry();
    const pool = lpPool({ max: 1, leasepool: { name: 'compat_reasons', metrics: { registry } } });
    const closed = (reason: string): Promise<number> => metric(registry, 'leasepool_connections_closed_total', { pool: 'compat_reasons', reason });
    await expect(pool.query('SELECT nonsense_column')).rejects.toMatchObject({ code: '42703' });
    (await pool.connect()).release(true);
    await waitFor('two routine closes', async () => (await closed('lifetime')) === 2);
    const client = await pool.connect();
    const failed = new Promise((resolve) => client.once('error', resolve));
    (client as unknown as { connection: { end(): void } }).connection.end();
    await failed;
    client.release();
    await waitFor('one broken close', async () => (await closed('broken')) === 1);
    expect(await closed('lifetime')).toBe(2);
  });

  test.each(both)('%s: pg-pool private list _clients holds the open clients', async (_name, make) => {
    const pool = make({ max: 1 });
    const client = await pool.connect();
    expect((pool as unknown as { _clients: unknown[] })._clients).toEqual([client]);
    client.release();
  });
});

describe('idle and lifetime timers', () => {
  test.each(both)('%s: idleTimeoutMillis removes an idle client on its own timer, and a client in use is never removed', async (_name, make) => {
    const pool = make({ idleTimeoutMillis: 1 });
    const removed = jest.fn();
    pool.on('remove', removed);
    for (let i = 0; i < 3; i++) {
      await pool.query('SELECT 1');
      await waitFor('the idle client removed', () => pool.totalCount === 0, 1_000, 1);
      expect(pool.idleCount).toBe(0);
    }
    await waitFor('three removals', () => removed.mock.calls.length === 3);
    const client = await pool.connect();
    await delay(20); // twenty idle timeouts: the checked-out client stays
    expect([pool.totalCount, pool.idleCount]).toEqual([1, 0]);
    client.release();
  });

  test.each(both)('%s: min keeps that many idle clients from timing out, and none is opened ahead of use', async (_name, make) => {
    const pool = make({ max: 2, min: 1, idleTimeoutMillis: 10 });
    expect(pool.totalCount).toBe(0);
    const [a, b] = await Promise.all([pool.connect(), pool.connect()]);
    a.release();
    b.release();
    await waitFor('down to min', () => pool.totalCount === 1);
    await delay(40);
    expect([pool.totalCount, pool.idleCount]).toEqual([1, 1]);
  });

  test.each(both)('%s: maxLifetimeSeconds: expiredCount while the client works, removed at release; an idle one on its timer', async (_name, make) => {
    const pool = make({ maxLifetimeSeconds: 1 });
    const working = pool.query('SELECT pg_sleep(1.3)');
    expect([pool.expiredCount, pool.totalCount]).toEqual([0, 1]);
    await waitFor('expired while working', () => pool.expiredCount === 1, 2_000);
    expect(pool.totalCount).toBe(1);
    await working;
    expect([pool.expiredCount, pool.totalCount]).toEqual([0, 0]);
    await pool.query('SELECT 1');
    expect(pool.idleCount).toBe(1);
    await waitFor('the idle client expired and removed', () => pool.totalCount === 0, 2_000);
    expect(pool.expiredCount).toBe(0);
  });
});

describe('events', () => {
  test.each(both)('%s: acquire and release once per checkout, by connect() and by query()', async (_name, make) => {
    const pool = make();
    const acquired = jest.fn();
    const released = jest.fn();
    pool.on('acquire', acquired);
    pool.on('release', released);
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++) {
      work.push(pool.connect().then((client) => client.release()));
      work.push(pool.query('SELECT 1'));
    }
    await Promise.all(work);
    expect([acquired.mock.calls.length, released.mock.calls.length]).toEqual([10, 10]);
    for (const [err, client] of released.mock.calls) {
      expect(err instanceof Error).toBe(false);
      expect(client).toBeInstanceOf(pg.Client);
    }
  });

  test.each(both)("%s: an idle client's error: 'error' with that client, removed at once, then 'remove'", async (_name, make) => {
    const pool = make();
    const client = await pool.connect();
    (client as unknown as { testMark: string }).testMark = 'mine';
    client.release();
    const errors: Array<[Error & { client?: unknown }, unknown]> = [];
    pool.on('error', (err, errClient) => errors.push([err, errClient]));
    const removed = new Promise((resolve) => pool.once('remove', resolve));
    client.emit('error', new Error('expected'));
    expect(errors).toHaveLength(1);
    expect(errors[0]?.[0].message).toBe('expected');
    expect(errors[0]?.[1]).toBe(client);
    expect((errors[0]?.[0].client as { testMark?: string } | undefined)?.testMark).toBe('mine');
    expect([pool.totalCount, pool.idleCount]).toEqual([0, 0]);
    expect(await removed).toBe(client);
  });

  test.each(both)("%s: a checked-out client's error stays with the holder: no pool 'error', still counted", async (_name, make) => {
    const pool = make();
    const client = await pool.connect();
    const poolErrors = jest.fn();
    pool.on('error', poolErrors);
    const clientErrors = jest.fn();
    client.on('error', clientErrors);
    client.emit('error', new Error('expected'));
    expect(clientErrors).toHaveBeenCalledTimes(1);
    expect(poolErrors).not.toHaveBeenCalled();
    expect(pool.totalCount).toBe(1);
    client.release();
  });
});

describe('onConnect and connectionTimeoutMillis', () => {
  test.each(both)('%s: repeated onConnect failures leave nothing behind; then the pool connects normally, fast', async (_name, make) => {
    let failures = 0;
    const pool = make({
      max: 2,
      onConnect: () => {
        if (failures < 10) {
          failures++;
          throw new Error('connect hook error');
        }
      },
    } as pg.PoolConfig);
    const started = Date.now();
    for (let i = 0; i < 10; i++) await expect(pool.connect()).rejects.toThrow('connect hook error');
    expect(Date.now() - started).toBeLessThan(1_500);
    expect([pool.totalCount, pool.idleCount]).toEqual([0, 0]);
    const [a, b] = await Promise.all([pool.connect(), pool.connect()]);
    expect(pool.totalCount).toBe(2);
    a.release();
    b.release();
  });

  test.each(both)('%s: an async onConnect runs once per client, before first use, and may query it', async (_name, make) => {
    const pool = make({
      onConnect: async (client: pg.ClientBase) => {
        const { rows } = await client.query<{ n: number }>('SELECT 41 + 1 AS n');
        (client as unknown as { hooked: number }).hooked = ((client as unknown as { hooked?: number }).hooked ?? 0) + (rows[0]?.n ?? 0);
      },
    } as unknown as pg.PoolConfig);
    const client = await pool.connect();
    expect((client as unknown as { hooked: number }).hooked).toBe(42);
    client.release();
    const again = await pool.connect();
    expect((again as unknown as { hooked: number }).hooked).toBe(42);
    again.release();
  });

  test.each(both)('%s: a caller that timed out waiting does not lose the client connected for it: it goes to the pool', async (_name, make) => {
    const failure = new Error('Temporary connection failure');
    // First connect fails after 100 ms; the next takes 400 ms (past the 300 ms wait), later ones are prompt.
    const pool = make({ Client: flakyClient(failure, 1, 100, 400), connectionTimeoutMillis: 300, max: 1 } as pg.PoolConfig);
    const direct = pool.connect().catch((err: unknown) => err);
    const queued = pool.connect().catch((err: unknown) => err);
    expect(await direct).toBe(failure);
    const timedOut = (await queued) as Error;
    expect(timedOut).toBeInstanceOf(Error);
    await expect(pool.query('SELECT $1::text AS name', ['brianc'])).resolves.toMatchObject({ rows: [{ name: 'brianc' }] });
  });

  test.each(both)('%s: connectionTimeoutMillis against a server that never answers: each checkout fails, quickly', async (_name, make) => {
    const server = net.createServer((socket) => socket.on('data', () => undefined));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const port = (server.address() as net.AddressInfo).port;
    const pool = make({ connectionString: `postgres://postgres@127.0.0.1:${port}/nothing`, connectionTimeoutMillis: 20 });
    const started = Date.now();
    for (let i = 0; i < 5; i++) await expect(pool.connect()).rejects.toThrow(/timeout/);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect([pool.idleCount, pool.totalCount]).toEqual([0, 0]);
  });
});

describe('the Client option', () => {
  test.each(both)('%s: a pg.Client subclass makes every client; the pool hands out its instances', async (_name, make) => {
    class Tagged extends pg.Client {
      readonly tag = 'tagged';
    }
    const pool = make({ Client: Tagged } as pg.PoolConfig);
    const client = await pool.connect();
    expect(client).toBeInstanceOf(Tagged);
    expect((client as unknown as Tagged).tag).toBe('tagged');
    await expect(client.query('SELECT 1 AS ok')).resolves.toMatchObject({ rows: [{ ok: 1 }] });
    client.release();
  });
});
