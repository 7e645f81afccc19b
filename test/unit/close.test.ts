/**
 * Shutdown: close() stops acquires, waits for leases up to its deadline, reclaims the rest,
 * closes idle connections, never hangs, and is idempotent.
 */
import { LeaseRevokedError, PoolClosedError, shutdownOnSignals, type ReclaimEvent } from '../../src';
import { closeAll, metric, rejection, settle, setup, waitFor } from '../helpers/unit';

afterEach(closeAll);

const since = (t0: number): number => performance.now() - t0;

test('close({ timeoutMs }) with a held lease resolves by the deadline with { released, reclaimed }', async () => {
  const { pool, db, registry } = setup({ name: 'close_held', max: 3 });
  const reclaims: ReclaimEvent[] = [];
  pool.on('reclaim', (e) => reclaims.push(e));
  const held = await pool.acquire();
  await held.conn.query('BEGIN');
  const conn = held.conn;
  const idle = await pool.acquire();
  await idle.release();
  const t0 = performance.now();
  const summary = await pool.close({ timeoutMs: 50 });
  const ms = since(t0);
  expect(ms).toBeGreaterThanOrEqual(45);
  expect(ms).toBeLessThan(1_000);
  expect(summary).toEqual({ released: 0, reclaimed: 1 });
  expect(held.state).toBe('revoked');
  expect(() => conn.query('SELECT 1')).toThrow(LeaseRevokedError);
  expect(reclaims).toEqual([expect.objectContaining({ id: held.id, kind: 'shutdown_reclaimed', reason: expect.any(PoolClosedError) })]);
  // The reclaimed connection was rolled back, then every connection closed.
  expect(db.connections.find((c) => c.log.includes('BEGIN'))!.log).toEqual(['BEGIN', 'ROLLBACK']);
  expect(db.open).toEqual([]);
  expect(pool.stats()).toMatchObject({ size: 0, idle: 0, active: 0, closed: true });
  expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'close_held', kind: 'shutdown_reclaimed' })).toBe(1);
  expect(await metric(registry, 'leasepool_connections_closed_total', { pool: 'close_held', reason: 'shutdown' })).toBe(1);
  expect(await metric(registry, 'leasepool_connections_closed_total', { pool: 'close_held', reason: 'reclaimed' })).toBe(1);
  await expect(held.release()).resolves.toBeUndefined();
});

test('a lease given back while close() waits counts as released, and close() finishes early', async () => {
  const { pool, db } = setup();
  const lease = await pool.acquire();
  const t0 = performance.now();
  const closing = pool.close({ timeoutMs: 5_000 });
  expect(pool.stats().closed).toBe(true);
  await lease.conn.query('STILL USABLE UNTIL THE DEADLINE');
  await lease.release();
  expect(await closing).toEqual({ released: 1, reclaimed: 0 });
  expect(since(t0)).toBeLessThan(1_000);
  expect(db.open).toEqual([]);
});

test('a second close() returns the same promise; acquire after close → PoolClosedError', async () => {
  const { pool } = setup();
  const first = pool.close({ timeoutMs: 10 });
  const second = pool.close({ timeoutMs: 99_999 });
  expect(second).toBe(first);
  await first;
  expect(pool.close()).toBe(first);
  await expect(pool.acquire()).rejects.toBeInstanceOf(PoolClosedError);
  await expect(pool.acquire()).rejects.toMatchObject({ code: 'POOL_CLOSED' });
});

test('callers waiting at close() get PoolClosedError at once', async () => {
  const { pool } = setup({ max: 1 });
  const held = await pool.acquire();
  const waiting = [pool.acquire(), pool.withLease(async () => 1), pool.acquire({ signal: new AbortController().signal })];
  expect(pool.stats().pending).toBe(3);
  const closing = pool.close({ timeoutMs: 1_000 });
  for (const w of waiting) expect(await rejection(w)).toBeInstanceOf(PoolClosedError);
  await held.release();
  await closing;
});

test('a scoped lease still running at the deadline: the call rejects even if the callback never settles', async () => {
  const { pool } = setup();
  let lease: { state: string; signal: AbortSignal } | undefined;
  const scope = settle(
    pool.withLease(async (_c, l) => {
      lease = l;
      await new Promise(() => undefined);
    }),
  );
  await waitFor('the scope is running', () => lease !== undefined);
  const summary = await pool.close({ timeoutMs: 20 });
  expect(summary).toEqual({ released: 0, reclaimed: 1 });
  expect(lease!.state).toBe('revoked');
  expect(lease!.signal.aborted).toBe(true);
  const result = await scope;
  expect(result.ok).toBe(false);
  expect(!result.ok && result.error).toBeInstanceOf(PoolClosedError);
});

test('a statement running at the deadline is cancelled', async () => {
  const { pool, db } = setup();
  const lease = await pool.acquire();
  const statement = lease.conn.query('SLEEP 10000').catch((e: unknown) => e);
  await pool.close({ timeoutMs: 10 });
  expect(db.cancelled).toEqual([db.connections[0]!.id]);
  expect(await statement).toMatchObject({ message: 'canceling statement due to user request' });
});

test('close() is not held by a connect backoff', async () => {
  const { pool, db } = setup({ max: 8 });
  for (let i = 0; i < 10; i++) db.connectFailures.push(new Error('ECONNREFUSED'));
  // Eight connects fail at once: their backoffs grow from 50 ms to the cap.
  const results = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(() => settle(pool.acquire())));
  expect(results.every((r) => !r.ok)).toBe(true);
  const t0 = performance.now();
  await pool.close({ timeoutMs: 10 });
  expect(since(t0)).toBeLessThan(1_000);
});

test('close() is not held by a connect to a blackholed server', async () => {
  const { pool, db } = setup({ connectTimeoutMs: 5_000 });
  db.blackhole = true;
  const waiting = pool.acquire();
  await waitFor('the connect has started', () => db.connectAttempts === 1);
  const t0 = performance.now();
  await pool.close({ timeoutMs: 10 });
  expect(since(t0)).toBeLessThan(1_000); // not after connectTimeoutMs (5 s)
  expect(await rejection(waiting)).toBeInstanceOf(PoolClosedError);
});

test('min connections are not reopened during or after close()', async () => {
  const { pool, db } = setup({ min: 2, max: 3 });
  await waitFor('min connections are idle', () => pool.stats().idle === 2);
  const lease = await pool.acquire(); // the pool may open a third
  const opened = db.connections.length;
  await pool.close({ timeoutMs: 10 }); // reclaims `lease`, closes the rest
  expect(lease.state).toBe('revoked');
  expect(db.open).toEqual([]);
  expect(db.connections.length).toBe(opened);
});

test('shutdownOnSignals closes every pool on the first signal and reports each summary', async () => {
  const a = setup();
  const b = setup();
  const held = await a.pool.acquire();
  const results: Array<{ pool: string; summary?: unknown; error?: unknown }>[] = [];
  const off = shutdownOnSignals([a.pool, b.pool], { signals: ['SIGUSR2'], timeoutMs: 20, exit: false, onClosed: (r) => results.push(r) });
  try {
    process.emit('SIGUSR2', 'SIGUSR2');
    await waitFor('both pools are closed', () => results.length === 1);
    expect(results[0]).toEqual([
      { pool: a.pool.name, summary: { released: 0, reclaimed: 1 } },
      { pool: b.pool.name, summary: { released: 0, reclaimed: 0 } },
    ]);
    expect(held.state).toBe('revoked');
    expect(a.pool.stats().closed && b.pool.stats().closed).toBe(true);
  } finally {
    off();
  }
  expect(process.listeners('SIGUSR2')).toHaveLength(0);
});

test('shutdownOnSignals: a second signal while the pools close exits at once, with that signal\'s code', async () => {
  const { pool } = setup();
  const held = await pool.acquire();
  const exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
  const off = shutdownOnSignals(pool, { signals: ['SIGTERM', 'SIGHUP'], timeoutMs: 10_000 });
  try {
    process.emit('SIGTERM', 'SIGTERM');
    expect(pool.stats().closed).toBe(true);
    expect(exit).not.toHaveBeenCalled(); // the close waits for the held lease, up to its deadline
    process.emit('SIGHUP', 'SIGHUP');
    expect(exit.mock.calls).toEqual([[129]]); // at once: 128 + SIGHUP
    await held.release();
    await waitFor('the close finished and exited too', () => exit.mock.calls.length === 2);
    expect(exit.mock.calls[1]).toEqual([143]); // 128 + SIGTERM, the first signal
  } finally {
    off();
    exit.mockRestore();
  }
});
