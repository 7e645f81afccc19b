/**
 * The release path: rollback of a transaction left open, retirement (broken, mid-query,
 * maxUses, maxLifetimeMs, failed reset), session reset, idle eviction, broken idle connections.
 */
import { createPool } from '../../src';
import { fakeAdapter, FakeError } from '../helpers/fake-adapter';
import { captureLogger, closeAll, delay, metric, setup, waitFor } from '../helpers/unit';

afterEach(closeAll);

describe('transaction left open at release', () => {
  test('raw BEGIN left open → ROLLBACK sent, counted, and the next lease sees an idle connection', async () => {
    const { pool, db, registry } = setup({ name: 'rp_begin', max: 1 });
    await pool.withLease(async (conn) => {
      await conn.query('BEGIN');
      await conn.query('INSERT');
    });
    const raw = db.connections[0]!;
    expect(raw.log).toEqual(['BEGIN', 'INSERT', 'ROLLBACK']);
    expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'rp_begin', kind: 'rollback_on_release' })).toBe(1);
    await pool.withLease(async (conn) => {
      expect(conn.id).toBe(raw.id); // reused, not destroyed
      expect(conn.status).toBe('idle');
    });
  });

  test('a failed (aborted) transaction left open is rolled back too', async () => {
    const { pool, db } = setup({ max: 1 });
    await pool.withLease(async (conn) => {
      await conn.query('BEGIN');
      await expect(conn.query('FAIL')).rejects.toThrow('statement failed');
      expect(conn.status).toBe('failed');
    });
    expect(db.connections[0]!.log.at(-1)).toBe('ROLLBACK');
    await pool.withLease(async (conn) => expect(conn.status).toBe('idle'));
  });

  test('manual acquire/release rolls back as well', async () => {
    const { pool, db } = setup();
    const lease = await pool.acquire();
    await lease.conn.query('BEGIN');
    await lease.release();
    expect(db.connections[0]!.log).toEqual(['BEGIN', 'ROLLBACK']);
    expect(db.connections[0]!.status).toBe('idle');
  });

  test('no rollback when nothing is open', async () => {
    const { pool, db, registry } = setup({ name: 'rp_none' });
    await pool.withLease(async (conn) => {
      await conn.query('BEGIN');
      await conn.query('COMMIT');
    });
    expect(db.connections[0]!.log).toEqual(['BEGIN', 'COMMIT']);
    expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'rp_none', kind: 'rollback_on_release' })).toBe(0);
  });

  test('a failing rollback destroys the connection', async () => {
    const { pool, db, registry } = setup({ name: 'rp_rbfail', max: 1 });
    db.failRollback = true;
    await pool.withLease(async (conn) => {
      await conn.query('BEGIN');
    });
    const raw = db.connections[0]!;
    expect(raw.closed).toBe(true);
    expect(pool.stats()).toMatchObject({ size: 0, idle: 0, active: 0 });
    db.failRollback = false;
    const id = await pool.withLease(async (conn) => conn.id);
    expect(id).not.toBe(raw.id);
    expect(await metric(registry, 'leasepool_connections_closed_total', { pool: 'rp_rbfail', reason: 'broken' })).toBe(1);
  });
});

test('a statement still in flight at release → destroyed, not reused', async () => {
  const { pool, db } = setup({ max: 1 });
  let inflight: Promise<unknown> | undefined;
  await pool.withLease((conn) => {
    inflight = conn.query('SLEEP 50'); // fire and forget
  });
  const raw = db.connections[0]!;
  expect(raw.closed).toBe(true);
  expect(pool.stats()).toMatchObject({ size: 0, idle: 0 });
  const id = await pool.withLease(async (conn) => conn.id);
  expect(id).not.toBe(raw.id);
  await inflight;
});

test('a statement that settled before release does not retire the connection', async () => {
  const { pool, db } = setup({ max: 1 });
  await pool.withLease(async (conn) => {
    await conn.query('SLEEP 5');
    await expect(conn.query('FAIL')).rejects.toThrow();
  });
  expect(db.connections[0]!.closed).toBe(false);
  expect(pool.stats()).toMatchObject({ size: 1, idle: 1 });
});

test('maxUses: the connection is closed after N leases (reason max_uses)', async () => {
  const { pool, db, registry } = setup({ name: 'rp_uses', max: 1, maxUses: 3 });
  const ids: number[] = [];
  for (let i = 0; i < 7; i++) ids.push(await pool.withLease(async (conn) => conn.id));
  const [a, b, c] = db.connections;
  expect(ids).toEqual([a!.id, a!.id, a!.id, b!.id, b!.id, b!.id, c!.id]);
  expect(a!.closed && b!.closed).toBe(true);
  expect(c!.closed).toBe(false);
  expect(await metric(registry, 'leasepool_connections_closed_total', { pool: 'rp_uses', reason: 'max_uses' })).toBe(2);
});

test('maxUses counts joined scopes once (one lease = one use)', async () => {
  const { pool, db } = setup({ max: 1, maxUses: 2 });
  await pool.withLease(async () => {
    await pool.withLease(async () => undefined);
    await pool.withTx(async () => undefined);
  });
  expect(db.connections[0]!.closed).toBe(false);
  await pool.withLease(async () => undefined);
  expect(db.connections[0]!.closed).toBe(true);
});

test('maxLifetimeMs: a connection past its lifetime is retired at release (reason lifetime)', async () => {
  const { pool, db, registry } = setup({ name: 'rp_life', max: 1, maxLifetimeMs: 40, idleTimeoutMs: Infinity });
  const lease = await pool.acquire();
  await delay(50); // the lifetime under test has to pass
  await lease.release();
  expect(db.connections[0]!.closed).toBe(true);
  expect(await metric(registry, 'leasepool_connections_closed_total', { pool: 'rp_life', reason: 'lifetime' })).toBe(1);
  const id = await pool.withLease(async (conn) => conn.id);
  expect(id).toBe(db.connections[1]!.id);
});

test('maxLifetimeMs: an idle connection past its lifetime is closed by the evictor and never handed out', async () => {
  const { pool, db, registry } = setup({ name: 'rp_life_idle', max: 1, maxLifetimeMs: 40, idleTimeoutMs: Infinity });
  await pool.withLease(async () => undefined);
  const first = db.connections[0]!;
  await waitFor('the expired idle connection is closed', () => first.closed);
  expect(await metric(registry, 'leasepool_connections_closed_total', { pool: 'rp_life_idle', reason: 'lifetime' })).toBe(1);
  expect(pool.stats()).toMatchObject({ size: 0, idle: 0 });
});

test('maxLifetimeMs: an expired idle connection met at acquire is replaced', async () => {
  // Eviction runs at most every 5 s for long lifetimes: acquire must check expiry itself.
  const { pool, db } = setup({ max: 2, maxLifetimeMs: 60_000, idleTimeoutMs: Infinity });
  await pool.withLease(async () => undefined);
  const first = db.connections[0]!;
  const realNow = performance.now.bind(performance);
  const spy = jest.spyOn(performance, 'now').mockImplementation(() => realNow() + 120_000);
  try {
    const id = await pool.withLease(async (conn) => conn.id);
    expect(id).not.toBe(first.id);
    expect(first.closed).toBe(true);
  } finally {
    spy.mockRestore();
  }
});

describe('resetOnRelease', () => {
  test('reset runs at every release', async () => {
    const { pool, db } = setup({ max: 1, resetOnRelease: true });
    await pool.withLease(async () => undefined);
    await pool.withLease(async () => undefined);
    expect(db.resets).toEqual([db.connections[0]!.id, db.connections[0]!.id]);
    expect(db.connections).toHaveLength(1);
  });

  test('no reset without the option', async () => {
    const { pool, db } = setup({ max: 1 });
    await pool.withLease(async () => undefined);
    expect(db.resets).toEqual([]);
  });

  test('a failing reset destroys the connection (reason reset)', async () => {
    const { pool, db, registry } = setup({ name: 'rp_reset', max: 1, resetOnRelease: true });
    db.failReset = true;
    await pool.withLease(async () => undefined);
    expect(db.connections[0]!.closed).toBe(true);
    expect(await metric(registry, 'leasepool_connections_closed_total', { pool: 'rp_reset', reason: 'reset' })).toBe(1);
    db.failReset = false;
    await pool.withLease(async () => undefined);
    expect(db.connections).toHaveLength(2);
    expect(db.resets).toEqual([db.connections[1]!.id]);
  });

  test('reset happens after the rollback of a transaction left open', async () => {
    const { pool, db } = setup({ max: 1, resetOnRelease: true });
    await pool.withLease(async (conn) => conn.query('BEGIN'));
    expect(db.connections[0]!.log).toEqual(['BEGIN', 'ROLLBACK']);
    expect(db.resets).toEqual([db.connections[0]!.id]);
  });
});

test('idle eviction runs and respects min', async () => {
  const { pool, db, registry } = setup({ name: 'rp_idle', max: 3, min: 1, idleTimeoutMs: 30 });
  const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
  expect(pool.stats().size).toBe(3);
  await Promise.all(leases.map((l) => l.release()));
  expect(pool.stats()).toMatchObject({ size: 3, idle: 3 });
  await waitFor('idle connections above min are evicted', () => pool.stats().size === 1);
  expect(db.open).toHaveLength(1);
  expect(await metric(registry, 'leasepool_connections_closed_total', { pool: 'rp_idle', reason: 'idle' })).toBe(2);
  // min is kept: after a few more eviction periods the last connection is still open.
  await delay(100);
  expect(pool.stats()).toMatchObject({ size: 1, idle: 1 });
});

test('min connections are opened at start', async () => {
  const { pool, db } = setup({ max: 3, min: 2 });
  await waitFor('min connections are idle in the pool', () => pool.stats().idle === 2);
  expect(pool.stats()).toMatchObject({ size: 2, idle: 2, active: 0, min: 2 });
  expect(db.open).toHaveLength(2);
});

describe('a connection that breaks while idle', () => {
  test("is never handed out, and pool.on('error') receives the error", async () => {
    const { pool, db, registry } = setup({ name: 'rp_kill', max: 1, idleTimeoutMs: Infinity, maxLifetimeMs: Infinity });
    const errors: Error[] = [];
    pool.on('error', (e) => errors.push(e));
    await pool.withLease(async () => undefined);
    const raw = db.connections[0]!;
    const cause = new FakeError('terminating connection due to administrator command', true, false);
    raw.kill(cause);
    expect(errors).toEqual([cause]);
    const id = await pool.withLease(async (conn) => {
      await conn.query('SELECT 1');
      return conn.id;
    });
    expect(id).not.toBe(raw.id);
    expect(raw.closed).toBe(true);
    expect(await metric(registry, 'leasepool_connections_closed_total', { pool: 'rp_kill', reason: 'broken' })).toBe(1);
    expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'rp_kill', kind: 'broken_connection' })).toBe(1);
  });

  test('the evictor closes it without any acquire', async () => {
    const { pool, db } = setup({ max: 1, idleTimeoutMs: 40 });
    pool.on('error', () => undefined);
    await pool.withLease(async () => undefined);
    db.connections[0]!.kill();
    await waitFor('the broken idle connection is closed', () => db.connections[0]!.closed);
    expect(pool.stats().size).toBe(0);
  });

  test('with no error listener the error goes to the logger (no crash)', async () => {
    const { logger, entries } = captureLogger();
    const adapter = fakeAdapter();
    const pool = createPool(adapter, { max: 1, leakDetectionMs: 0, logger });
    try {
      await pool.withLease(async () => undefined);
      const cause = new FakeError('socket hang up', true, false);
      expect(() => adapter.db.connections[0]!.kill(cause)).not.toThrow();
      const errors = entries.filter((e) => e.level === 'error');
      expect(errors).toHaveLength(1);
      expect(errors[0]!.msg).toContain('socket hang up');
      expect(errors[0]!.obj).toMatchObject({ err: cause });
      await expect(pool.withLease(async (conn) => conn.query('SELECT 1'))).resolves.toEqual({ rows: [] });
    } finally {
      await pool.close();
    }
  });

  test('a second error from the same connection is not reported again', async () => {
    const { pool, db } = setup({ max: 1 });
    const errors: Error[] = [];
    pool.on('error', (e) => errors.push(e));
    await pool.withLease(async () => undefined);
    const raw = db.connections[0]!;
    raw.events.onError(new Error('first'));
    raw.events.onError(new Error('second'));
    expect(errors.map((e) => e.message)).toEqual(['first']);
  });
});
