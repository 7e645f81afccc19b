/**
 * Getting a connection: generic-pool's traps defused (failing, blackholed and synchronously
 * throwing connects), acquire deadlines, the waiting-queue bound, AbortSignal, stats, and the
 * nested-acquire deadlock detector.
 */
import { inspect } from 'node:util';
import {
  AcquireTimeoutError,
  ConnectError,
  NestedAcquireError,
  PoolClosedError,
  PoolQueueFullError,
  createPool,
} from '../../src';
import { fakeAdapter } from '../helpers/fake-adapter';
import { captureLogger } from '../helpers/lifecycle';
import { closeAll, metric, rejection, settle, setup, waitFor } from '../helpers/unit';

afterEach(closeAll);

const elapsedSince = (t0: number): number => performance.now() - t0;

function refused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED', errno: -111 });
}

describe('connect failures (generic-pool traps)', () => {
  test('a failing connect rejects acquire() promptly with ConnectError, cause kept', async () => {
    const { pool, db, registry } = setup({ name: 'acq_refused', acquireTimeoutMs: 5_000 });
    db.connectFailures.push(refused());
    const t0 = performance.now();
    const err = await rejection(pool.acquire());
    expect(elapsedSince(t0)).toBeLessThan(500);
    expect(err).toBeInstanceOf(ConnectError);
    expect(err).toMatchObject({ code: 'CONNECT_FAILED' });
    expect((err as Error).message).toContain('ECONNREFUSED');
    expect((err as Error).message).toContain('memory:0/fake');
    expect((err as Error).cause).toMatchObject({ message: 'connect ECONNREFUSED 127.0.0.1:5432', code: 'ECONNREFUSED', errno: -111 });
    expect(await metric(registry, 'leasepool_acquires_total', { pool: 'acq_refused', outcome: 'error' })).toBe(1);
    expect(pool.stats()).toMatchObject({ size: 0, pending: 0 });
  });

  test('every waiting caller gets the ConnectError promptly, well before acquireTimeoutMs', async () => {
    const { pool, db } = setup({ max: 4, acquireTimeoutMs: 5_000 });
    for (let i = 0; i < 100; i++) db.connectFailures.push(refused());
    const t0 = performance.now();
    const results = await Promise.all(Array.from({ length: 6 }, () => settle(pool.acquire())));
    expect(elapsedSince(t0)).toBeLessThan(1_500);
    for (const r of results) {
      expect(r.ok).toBe(false);
      expect(!r.ok && r.error).toBeInstanceOf(ConnectError);
    }
    expect(pool.stats()).toMatchObject({ size: 0, pending: 0, active: 0 });
  });

  for (const mode of ['rejecting', 'synchronously throwing'] as const) {
    test(`a ${mode} connect is retried with backoff: no hang, no CPU spin, few attempts`, async () => {
      const { pool, db } = setup({ max: 2, acquireTimeoutMs: 5_000 });
      const queue = mode === 'rejecting' ? db.connectFailures : db.syncConnectFailures;
      for (let i = 0; i < 200; i++) queue.push(refused());
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 10);
      const t0 = performance.now();
      let calls = 0;
      try {
        while (elapsedSince(t0) < 500) {
          calls++;
          const err = await rejection(pool.acquire());
          expect(err).toBeInstanceOf(ConnectError);
        }
      } finally {
        clearInterval(ticker);
      }
      expect(calls).toBeGreaterThanOrEqual(2); // callers keep asking, so the pool keeps trying
      expect(db.connectAttempts).toBeGreaterThanOrEqual(2);
      expect(db.connectAttempts).toBeLessThan(20);
      // The event loop stayed free: a 10 ms interval kept firing.
      expect(ticks).toBeGreaterThanOrEqual(10); // a spinning loop would allow none
    });
  }

  test('failed connects do not count against max', async () => {
    const { pool, db } = setup({ max: 1, acquireTimeoutMs: 5_000 });
    db.connectFailures.push(refused(), refused(), refused());
    for (let i = 0; i < 3; i++) {
      await expect(pool.acquire()).rejects.toBeInstanceOf(ConnectError);
      expect(pool.stats().size).toBe(0);
    }
    const lease = await pool.acquire();
    expect(pool.stats()).toMatchObject({ size: 1, active: 1 });
    expect(db.connections).toHaveLength(1);
    await lease.release();
  });

  test('a blackholed connect fails within connectTimeoutMs with ConnectError', async () => {
    const { pool, db } = setup({ connectTimeoutMs: 50, acquireTimeoutMs: 5_000 });
    db.blackhole = true;
    const t0 = performance.now();
    const err = await rejection(pool.acquire());
    const ms = elapsedSince(t0);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as Error).message).toMatch(/timed out after 50 ms/);
    expect(ms).toBeGreaterThanOrEqual(45);
    expect(ms).toBeLessThan(1_000);
    // The server comes back: the pool recovers.
    db.blackhole = false;
    const lease = await pool.acquire();
    expect(lease.state).toBe('active');
    await lease.release();
  });

  test('a connection that completes after its connect deadline is closed, not kept', async () => {
    const { pool, db } = setup({ connectTimeoutMs: 20, acquireTimeoutMs: 5_000 });
    db.connectDelayMs = 60;
    await expect(pool.acquire()).rejects.toBeInstanceOf(ConnectError);
    await waitFor('the late connection arrives', () => db.connections.length === 1);
    await waitFor('the late connection is closed', () => db.connections[0]!.closed);
    expect(pool.stats().size).toBe(0);
  });

  test('no password in a connect error: message, stack, cause, inspect, logs', async () => {
    const { pool, db, logs } = setup({ acquireTimeoutMs: 5_000, logConnectErrors: true });
    const secret = 'S3cr3t-pw';
    db.connectFailures.push(
      new Error(`password authentication failed for postgres://alice:${secret}@db.internal:5432/app`),
      new Error(`could not connect: host=db.internal user=alice password=${secret} dbname=app`),
    );
    for (let i = 0; i < 2; i++) {
      const err = (await rejection(pool.acquire())) as ConnectError;
      expect(err).toBeInstanceOf(ConnectError);
      const cause = err.cause as Error;
      for (const text of [err.message, err.stack, cause.message, cause.stack, inspect(err, { depth: 5 }), JSON.stringify(err)]) {
        expect(text).not.toContain(secret);
      }
      expect(err.message).toContain('alice'); // only the secret is masked
    }
    expect(inspect(logs, { depth: 8 })).not.toContain(secret);
  });
});

test('no password even when an adapter puts a URL with credentials in its target (timeout and failure paths)', async () => {
  const secret = 'T4rget-pw';
  const { pool, db, adapter, logs } = setup({ connectTimeoutMs: 20, acquireTimeoutMs: 5_000, logConnectErrors: true });
  (adapter as { target: string }).target = `postgres://bob:${secret}@db.internal:5432/app`;
  db.blackhole = true;
  const timedOut = (await rejection(pool.acquire())) as Error;
  db.blackhole = false;
  db.connectFailures.push(new Error('refused'));
  const failed = (await rejection(pool.acquire())) as Error;
  for (const err of [timedOut, failed]) {
    expect(err).toBeInstanceOf(ConnectError);
    expect(inspect(err, { depth: 5 })).not.toContain(secret);
    expect(err.message).toContain('db.internal');
  }
  expect(inspect(logs, { depth: 8 })).not.toContain(secret);
});

describe('acquire deadlines and limits', () => {
  test('acquireTimeoutMs → AcquireTimeoutError stating total/active/idle/waiting; no stale request remains', async () => {
    const { pool, registry } = setup({ name: 'acq_timeout', max: 1, acquireTimeoutMs: 5_000 });
    const held = await pool.acquire();
    const t0 = performance.now();
    const err = await rejection(pool.acquire({ timeoutMs: 30 }));
    expect(elapsedSince(t0)).toBeGreaterThanOrEqual(25);
    expect(err).toBeInstanceOf(AcquireTimeoutError);
    expect(err).toMatchObject({ code: 'ACQUIRE_TIMEOUT', timeoutMs: 30 });
    const message = (err as Error).message;
    expect(message).toContain('total=1');
    expect(message).toContain('active=1');
    expect(message).toContain('idle=0');
    expect(message).toContain('waiting=1');
    expect(message).toContain('acq_timeout');
    expect(await metric(registry, 'leasepool_acquires_total', { pool: 'acq_timeout', outcome: 'timeout' })).toBe(1);
    expect(pool.stats().pending).toBe(0);
    await held.release();
    // Had the timed-out request stayed queued in generic-pool, it would have taken the connection.
    expect(pool.stats()).toMatchObject({ idle: 1, active: 0, pending: 0 });
    const next = await pool.acquire({ timeoutMs: 50 });
    await next.release();
  });

  test("the pool's acquireTimeoutMs applies by default", async () => {
    const { pool } = setup({ max: 1, acquireTimeoutMs: 30 });
    const held = await pool.acquire();
    await expect(pool.withLease(async () => undefined)).rejects.toMatchObject({ code: 'ACQUIRE_TIMEOUT', timeoutMs: 30 });
    await held.release();
  });

  test('maxWaiting exceeded → PoolQueueFullError at once', async () => {
    const { pool, registry } = setup({ name: 'acq_full', max: 1, maxWaiting: 1, acquireTimeoutMs: 5_000 });
    const held = await pool.acquire();
    const waiting = pool.acquire();
    expect(pool.stats().pending).toBe(1);
    const t0 = performance.now();
    const err = await rejection(pool.acquire());
    expect(elapsedSince(t0)).toBeLessThan(1_000); // not after acquireTimeoutMs (5 s): at once
    expect(err).toBeInstanceOf(PoolQueueFullError);
    expect(err).toMatchObject({ code: 'POOL_QUEUE_FULL' });
    expect(await metric(registry, 'leasepool_acquires_total', { pool: 'acq_full', outcome: 'rejected' })).toBe(1);
    await held.release();
    const second = await waiting;
    await second.release();
  });

  test('maxWaiting 0: nobody waits', async () => {
    const { pool } = setup({ max: 1, maxWaiting: 0 });
    const held = await pool.acquire();
    await expect(pool.acquire()).rejects.toBeInstanceOf(PoolQueueFullError);
    await held.release();
    const again = await pool.acquire(); // a free connection is still handed out
    await again.release();
  });
});

describe('AbortSignal', () => {
  test('aborting a waiting acquire rejects with the signal reason; the connection later goes to the pool', async () => {
    const { pool, registry } = setup({ name: 'acq_abort', max: 1, acquireTimeoutMs: 5_000 });
    const held = await pool.acquire();
    const controller = new AbortController();
    const waiting = pool.acquire({ signal: controller.signal });
    expect(pool.stats().pending).toBe(1);
    const reason = new Error('caller gave up');
    controller.abort(reason);
    expect(await rejection(waiting)).toBe(reason);
    expect(pool.stats().pending).toBe(0);
    expect(await metric(registry, 'leasepool_acquires_total', { pool: 'acq_abort', outcome: 'aborted' })).toBe(1);
    await held.release();
    expect(pool.stats()).toMatchObject({ idle: 1, active: 0, pending: 0 });
  });

  test('a connection that arrives after the caller aborted goes back to the pool', async () => {
    const { pool, db } = setup({ max: 1, acquireTimeoutMs: 5_000 }, { connectDelayMs: 40 });
    const controller = new AbortController();
    const waiting = pool.acquire({ signal: controller.signal });
    await waitFor('the connect has started', () => db.connectAttempts === 1);
    const reason = new Error('abort while connecting');
    controller.abort(reason);
    expect(await rejection(waiting)).toBe(reason);
    await waitFor('the late connection is in the pool', () => pool.stats().idle === 1);
    expect(pool.stats()).toMatchObject({ size: 1, idle: 1, active: 0, pending: 0 });
    const lease = await pool.acquire();
    expect(lease.conn.id).toBe(db.connections[0]!.id);
    expect(db.connectAttempts).toBe(1);
    await lease.release();
  });

  test('an already aborted signal rejects at once without connecting', async () => {
    const { pool, db } = setup();
    const reason = new Error('too late');
    expect(await rejection(pool.acquire({ signal: AbortSignal.abort(reason) }))).toBe(reason);
    expect(db.connectAttempts).toBe(0);
    await expect(pool.withLease(async () => 1, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
  });

  test('abort() without a reason rejects with an AbortError', async () => {
    const { pool } = setup({ max: 1 });
    const held = await pool.acquire();
    const controller = new AbortController();
    const waiting = pool.acquire({ signal: controller.signal });
    controller.abort();
    expect(await rejection(waiting)).toMatchObject({ name: 'AbortError' });
    await held.release();
  });

  test('aborting after the lease was granted does nothing to the lease', async () => {
    const { pool } = setup();
    const controller = new AbortController();
    const lease = await pool.acquire({ signal: controller.signal });
    controller.abort(new Error('late'));
    expect(lease.state).toBe('active');
    await lease.conn.query('SELECT 1');
    await lease.release();
  });
});

describe('the waiting room', () => {
  test('a released connection goes straight to the longest-waiting caller, in arrival order', async () => {
    const { pool, db } = setup({ max: 1, acquireTimeoutMs: 5_000 });
    const held = await pool.acquire();
    const served: string[] = [];
    const waiting = ['first', 'second', 'third'].map((name) =>
      pool.acquire().then((lease) => {
        served.push(name);
        return lease;
      }),
    );
    expect(pool.stats().pending).toBe(3);
    await held.release();
    const first = await waiting[0]!;
    // Handed over, never idle in between: the others still wait, nobody else was served.
    expect(served).toEqual(['first']);
    expect(pool.stats()).toMatchObject({ size: 1, idle: 0, active: 1, pending: 2 });
    expect(first.conn.id).toBe(db.connections[0]!.id);
    await first.release();
    const second = await waiting[1]!;
    await second.release();
    const third = await waiting[2]!;
    expect(served).toEqual(['first', 'second', 'third']);
    await third.release();
    expect(pool.stats()).toMatchObject({ size: 1, idle: 1, active: 0, pending: 0 });
    expect(db.connectAttempts).toBe(1);
  });

  test.each([
    ['min 0', 0],
    ['min 2 (generic-pool tops up on its own)', 2],
  ])('callers waiting for a release get new connections when the leased ones are destroyed instead (%s)', async (_label, min) => {
    const { pool, db } = setup({ max: 2, min, acquireTimeoutMs: 2_000 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    const waiting = [pool.acquire(), pool.acquire(), pool.acquire()];
    expect(pool.stats().pending).toBe(3);
    const attemptsBefore = db.connectAttempts;
    // Both leased connections die: their slots come free, no release will serve the waiters.
    await expect(a.conn.query('FATAL')).rejects.toThrow('connection lost');
    await expect(b.conn.query('FATAL')).rejects.toThrow('connection lost');
    await a.release();
    await b.release();
    const [c, d] = await Promise.all([waiting[0]!, waiting[1]!]);
    expect(db.connectAttempts - attemptsBefore).toBeGreaterThanOrEqual(2);
    expect(pool.stats()).toMatchObject({ size: 2, active: 2, pending: 1 });
    const handedOn = c.conn.id;
    await c.release();
    const e = await waiting[2]!;
    expect(e.conn.id).toBe(handedOn);
    await d.release();
    await e.release();
    expect(pool.stats()).toMatchObject({ size: 2, idle: 2, active: 0, pending: 0 });
  });

  test('a caller that gives up while a connection is being opened for it leaves no fetch behind', async () => {
    const { pool, db } = setup({ max: 2, acquireTimeoutMs: 5_000 }, { connectDelayMs: 60 });
    const held = await pool.acquire();
    expect(db.connectAttempts).toBe(1);
    const err = await rejection(pool.acquire({ timeoutMs: 20 }));
    expect(err).toBeInstanceOf(AcquireTimeoutError);
    // The connect already under way completes and the connection goes idle: nobody waits for it,
    // and nothing goes on opening connections for the caller that left.
    await waitFor('the late connection is idle', () => pool.stats().idle === 1);
    expect(pool.stats()).toMatchObject({ size: 2, idle: 1, active: 1, pending: 0 });
    expect(db.connectAttempts).toBe(2);
    await held.release();
  });
});

describe('stats', () => {
  test('shape and values, pending > 0 while waiting', async () => {
    const { pool, registry } = setup({ name: 'acq_stats', max: 2, min: 0 });
    expect(Object.keys(pool.stats()).sort()).toEqual(['active', 'closed', 'idle', 'max', 'min', 'pending', 'size']);
    expect(pool.stats()).toEqual({ size: 0, idle: 0, active: 0, pending: 0, max: 2, min: 0, closed: false });
    const a = await pool.acquire();
    const b = await pool.acquire();
    const waiting = pool.acquire();
    expect(pool.stats()).toEqual({ size: 2, idle: 0, active: 2, pending: 1, max: 2, min: 0, closed: false });
    expect(await metric(registry, 'leasepool_acquires_pending', { pool: 'acq_stats' })).toBe(1);
    await a.release();
    const c = await waiting;
    expect(pool.stats()).toEqual({ size: 2, idle: 0, active: 2, pending: 0, max: 2, min: 0, closed: false });
    await b.release();
    await c.release();
    expect(pool.stats()).toEqual({ size: 2, idle: 2, active: 0, pending: 0, max: 2, min: 0, closed: false });
    await pool.close();
    expect(pool.stats()).toMatchObject({ size: 0, idle: 0, active: 0, closed: true });
  });
});

describe('nested acquire (deadlock detection)', () => {
  test('pool.acquire() inside withLease with max 1 → NestedAcquireError immediately', async () => {
    const { pool } = setup({ max: 1, acquireTimeoutMs: 5_000 });
    const t0 = performance.now();
    const err = await rejection(pool.withLease(async () => pool.acquire()));
    expect(elapsedSince(t0)).toBeLessThan(1_000); // not after acquireTimeoutMs (5 s): at once
    expect(err).toBeInstanceOf(NestedAcquireError);
    expect(err).toMatchObject({ code: 'NESTED_ACQUIRE' });
    expect(pool.stats()).toMatchObject({ active: 0, idle: 1, pending: 0 });
  });

  test("withTx(…, { propagation: 'requiresNew' }) nested with max 1 → NestedAcquireError", async () => {
    const { pool, db } = setup({ max: 1, acquireTimeoutMs: 5_000 });
    const err = await rejection(
      pool.withTx(async (conn) => {
        await conn.query('OUTER');
        await pool.withTx(async (c) => c.query('INNER'), { propagation: 'requiresNew' });
      }),
    );
    expect(err).toBeInstanceOf(NestedAcquireError);
    expect(db.connections[0]!.log).toEqual(['BEGIN', 'OUTER', 'ROLLBACK']);
  });

  test('with room in the pool a nested acquire simply gets another connection', async () => {
    const { pool, db } = setup({ max: 2 });
    await pool.withLease(async (outer) => {
      const inner = await pool.acquire();
      expect(inner.conn.id).not.toBe(outer.id);
      await inner.release();
      await pool.withTx(async (c) => c.query('NEW'), { propagation: 'requiresNew' });
    });
    expect(db.connections).toHaveLength(2);
    expect(db.connections[1]!.log).toEqual(['BEGIN', 'NEW', 'COMMIT']);
  });

  test('holding a lease of another pool is not a nested acquire: it waits normally', async () => {
    const a = setup({ max: 1 });
    const b = setup({ max: 1 });
    const heldB = await b.pool.acquire();
    await a.pool.withLease(async () => {
      await expect(b.pool.acquire({ timeoutMs: 20 })).rejects.toBeInstanceOf(AcquireTimeoutError);
    });
    await heldB.release();
  });
});

test('acquire after close → PoolClosedError', async () => {
  const { pool, registry } = setup({ name: 'acq_closed' });
  await pool.close();
  await expect(pool.acquire()).rejects.toBeInstanceOf(PoolClosedError);
  await expect(pool.withLease(async () => 1)).rejects.toMatchObject({ code: 'POOL_CLOSED' });
  await expect(pool.withTx(async () => 1)).rejects.toMatchObject({ code: 'POOL_CLOSED' });
  expect(await metric(registry, 'leasepool_acquires_total', { pool: 'acq_closed', outcome: 'rejected' })).toBe(3);
});

describe('connect failures and the log', () => {
  test('a connect failure a caller receives is not also logged', async () => {
    const { pool, db, logs } = setup({ acquireTimeoutMs: 5_000 });
    db.connectFailures.push(new Error('refused'));
    await expect(pool.acquire()).rejects.toBeInstanceOf(ConnectError);
    expect(logs.filter((e) => e.level === 'warn' || e.level === 'error')).toEqual([]);
  });

  test('logConnectErrors: true logs it as well', async () => {
    const { pool, db, logs } = setup({ acquireTimeoutMs: 5_000, logConnectErrors: true });
    db.connectFailures.push(new Error('refused'));
    await expect(pool.acquire()).rejects.toBeInstanceOf(ConnectError);
    expect(logs.filter((e) => e.level === 'warn').map((e) => e.msg)).toEqual([expect.stringContaining('refused')]);
  });

  test('a failure nobody waits for (opening min connections) is logged', async () => {
    const adapter = fakeAdapter();
    adapter.db.connectFailures.push(new Error('refused at start'));
    const { logger, entries } = captureLogger();
    const pool = createPool(adapter, { min: 1, leakDetectionMs: 0, logger });
    try {
      await waitFor('the failure is logged', () => entries.some((e) => e.level === 'warn' && String(e.msg).includes('refused at start')));
    } finally {
      await pool.close({ timeoutMs: 50 });
    }
  });
});
