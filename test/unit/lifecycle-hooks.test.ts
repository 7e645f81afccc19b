/**
 * Adapter hooks for drop-in facades (pg.Pool's `release(err)`, its double-release error,
 * allowExitOnIdle) and the prompt close of an idle connection that broke.
 */
import { createPool, LeaseReleasedError, type Adapter, type Pool } from '../../src';
import { fakeAdapter, type FakeConnection } from '../helpers/fake-adapter';
import { captureLogger, waitFor } from '../helpers/unit';

type Released = FakeConnection & { release(arg?: unknown): Promise<void> | void };

const pools: Pool<FakeConnection>[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 50 })));
});

function make(hooks: Partial<Adapter<FakeConnection>>, options: Parameters<typeof createPool>[1] = {}) {
  const adapter = Object.assign(fakeAdapter(), hooks);
  const { logger, entries } = captureLogger();
  const pool = createPool(adapter, { leakDetectionMs: 0, logger, ...options });
  pools.push(pool);
  return { pool, db: adapter.db, logs: entries };
}

test('onLease / onIdle bracket every lease with the raw connection; a destroyed connection never goes idle', async () => {
  const calls: string[] = [];
  const { pool, db } = make({
    onLease: (conn) => calls.push(`lease#${conn.id}`),
    onIdle: (conn) => calls.push(`idle#${conn.id}`),
  });
  await pool.withLease(async (conn) => conn.query('SELECT 1'));
  const id = db.connections[0]?.id;
  expect(calls).toEqual([`lease#${id}`, `idle#${id}`]);
  await expect(pool.withLease(async (conn) => conn.query('FATAL'))).rejects.toThrow('connection lost');
  expect(calls).toEqual([`lease#${id}`, `idle#${id}`, `lease#${id}`]);
});

test('onReleaseCall sees the arguments of conn.release(); true destroys the connection, false returns it', async () => {
  const seen: unknown[][] = [];
  const { pool, db } = make({
    onReleaseCall: (_conn, method, args) => {
      seen.push([method, ...args]);
      return Boolean(args[0]);
    },
  });
  const a = await pool.acquire();
  await (a.conn as Released).release();
  expect(a.state).toBe('released');
  expect(db.open).toHaveLength(1);
  const b = await pool.acquire();
  const failure = new Error('suspicious');
  await (b.conn as Released).release(failure);
  await waitFor('closed', () => db.open.length === 0);
  expect(seen).toEqual([['release'], ['release', failure]]);
  expect(pool.stats().size).toBe(0);
});

test('a throwing onReleaseCall reaches the caller, and the lease is released all the same', async () => {
  const { pool } = make({
    onReleaseCall: () => {
      throw new Error('hook bug');
    },
  });
  const lease = await pool.acquire();
  expect(() => (lease.conn as Released).release()).toThrow('hook bug');
  await waitFor('released', () => lease.state === 'released');
  expect(pool.stats().idle).toBe(1);
});

test('doubleReleaseMessage: a second release throws LeaseReleasedError with it, also through an extracted method', async () => {
  const message = 'Release called on client which has already been released to the pool.';
  const { pool } = make({ lifecycleMethods: { release: ['release'], destroy: ['end'], doubleReleaseMessage: message } });
  const lease = await pool.acquire();
  const conn = lease.conn as Released;
  const done = conn.release;
  await conn.release();
  let err: unknown;
  try {
    conn.release();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(LeaseReleasedError);
  expect((err as Error).message).toBe(message);
  expect(() => done()).toThrow(message);
  expect(() => conn.query('SELECT 1')).toThrow(LeaseReleasedError); // other access still throws at once
});

test('without doubleReleaseMessage a second release is ignored (idempotent)', async () => {
  const { pool } = make({});
  const lease = await pool.acquire();
  const release = (lease.conn as Released).release;
  await release();
  await expect(Promise.resolve(release())).resolves.toBeUndefined();
});

test('after a revoke, the first conn.release() joins the reclaim; the second throws', async () => {
  const message = 'released twice';
  const { pool } = make({ lifecycleMethods: { release: ['release'], destroy: ['end'], doubleReleaseMessage: message } }, { leaseTimeoutMs: 20 });
  const lease = await pool.acquire();
  const conn = lease.conn as Released;
  await waitFor('revoked', () => lease.state === 'revoked');
  await expect(Promise.resolve(conn.release())).resolves.toBeUndefined();
  expect(() => conn.release()).toThrow(message);
});

test('an idle connection that fails in the background is closed at once, not at the next eviction run', async () => {
  const { pool, db, logs } = make({}, { idleTimeoutMs: 60_000 });
  await pool.withLease(async (conn) => conn.query('SELECT 1'));
  expect(pool.stats()).toMatchObject({ size: 1, idle: 1 });
  db.connections[0]?.kill();
  await waitFor('closed', () => db.open.length === 0, 500);
  expect(pool.stats()).toMatchObject({ size: 0, idle: 0 });
  expect(logs.some((l) => l.level === 'error' && /while idle/.test(l.msg ?? ''))).toBe(true);
});
