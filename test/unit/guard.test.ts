/**
 * The guarded connection: no use after release, lifecycle methods turned into lease operations,
 * fatal errors retire the connection, non-fatal ones do not.
 */
import { LeaseReleasedError } from '../../src';
import type { FakeConnection } from '../helpers/fake-adapter';
import { closeAll, metric, rejection, setup } from '../helpers/unit';

afterEach(closeAll);

function releasedError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error(`expected a throw from ${String(fn)}`);
}

test('every kind of access after release throws LeaseReleasedError', async () => {
  const { pool } = setup();
  const lease = await pool.acquire();
  const conn = lease.conn;
  const query = conn.query; // a method extracted while the lease was active
  const bound = conn.query.bind(conn);
  await lease.release();

  const accesses: Array<[string, () => unknown]> = [
    ['method call', () => conn.query('SELECT 1')],
    ['method read', () => conn.query],
    ['data property', () => conn.status],
    ['id', () => conn.id],
    ['extracted method', () => query('SELECT 1')],
    ['bound method', () => bound('SELECT 1')],
    ['set', () => ((conn as unknown as Record<string, unknown>)['x'] = 1)],
    ['in', () => 'query' in conn],
    ['delete', () => delete (conn as unknown as Record<string, unknown>)['x']],
    ['keys', () => Object.keys(conn)],
    ['descriptor', () => Object.getOwnPropertyDescriptor(conn, 'id')],
    ['defineProperty', () => Object.defineProperty(conn, 'y', { value: 1 })],
    ['lease.conn', () => lease.conn],
  ];
  for (const [what, access] of accesses) {
    const err = releasedError(access);
    expect([what, err]).toEqual([what, expect.any(LeaseReleasedError)]);
    expect(err).toMatchObject({ code: 'LEASE_RELEASED' });
  }
});

test('no statement reaches the driver after release (even through an extracted method)', async () => {
  const { pool, db } = setup();
  let extracted: FakeConnection['query'] | undefined;
  await pool.withLease(async (conn) => {
    extracted = conn.query;
    await extracted('INSIDE');
  });
  expect(() => extracted!('AFTER')).toThrow(LeaseReleasedError);
  expect(db.connections[0]!.log).toEqual(['INSIDE']);
});

test('the guard behaves like the connection while active', async () => {
  const { pool } = setup();
  await pool.withLease(async (conn) => {
    expect(conn.status).toBe('idle');
    expect('query' in conn).toBe(true);
    (conn as unknown as Record<string, unknown>)['tag'] = 'mine';
    expect((conn as unknown as Record<string, unknown>)['tag']).toBe('mine');
    await conn.execute('BEGIN');
    expect(conn.status).toBe('in_tx');
    await conn.query('ROLLBACK');
  });
});

test('conn.release() ends the lease and returns the connection', async () => {
  const { pool, db } = setup({ max: 1 });
  const lease = await pool.acquire();
  const conn = lease.conn as FakeConnection & { release(): Promise<void> };
  await conn.release();
  expect(lease.state).toBe('released');
  expect(pool.stats()).toMatchObject({ active: 0, idle: 1, size: 1 });
  const next = await pool.acquire();
  expect(next.conn.id).toBe(db.connections[0]!.id);
  await next.release();
});

test('conn.release() inside withLease: the scope then finishes without a second release', async () => {
  const { pool } = setup({ max: 1 });
  await pool.withLease(async (conn, lease) => {
    await (conn as FakeConnection & { release(): Promise<void> }).release();
    expect(lease.state).toBe('released');
  });
  expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
});

test('conn.end() marks the connection broken: it is closed, never reused', async () => {
  const { pool, db, registry } = setup({ name: 'guard_end' });
  const lease = await pool.acquire();
  const raw = db.connections[0]!;
  await lease.conn.end();
  expect(lease.state).toBe('released');
  expect(raw.closed).toBe(true);
  expect(pool.stats()).toMatchObject({ size: 0, idle: 0, active: 0 });
  const next = await pool.acquire();
  expect(next.conn.id).not.toBe(raw.id);
  await next.release();
  expect(await metric(registry, 'leasepool_connections_closed_total', { pool: 'guard_end', reason: 'broken' })).toBe(1);
});

test('a fatal error through the guard: destroyed at release, the next lease gets a new connection', async () => {
  const { pool, db, registry } = setup({ name: 'guard_fatal', max: 1 });
  const errors: Error[] = [];
  pool.on('error', (e) => errors.push(e));
  const err = await rejection(pool.withLease(async (conn) => conn.query('FATAL')));
  expect(err).toMatchObject({ message: 'connection lost', fatal: true });
  expect(db.connections[0]!.closed).toBe(true);
  const id = await pool.withLease(async (conn) => {
    await conn.query('SELECT 1');
    return conn.id;
  });
  expect(id).not.toBe(db.connections[0]!.id);
  expect(db.connections).toHaveLength(2);
  expect(await metric(registry, 'leasepool_connections_closed_total', { pool: 'guard_fatal', reason: 'broken' })).toBe(1);
  expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'guard_fatal', kind: 'broken_connection' })).toBe(1);
});

test('a fatal error caught by the body still retires the connection', async () => {
  const { pool, db } = setup({ max: 1 });
  pool.on('error', () => undefined);
  await pool.withLease(async (conn) => {
    await expect(conn.query('FATAL')).rejects.toMatchObject({ fatal: true });
  });
  expect(db.connections[0]!.closed).toBe(true);
  expect(pool.stats().size).toBe(0);
});

test('a non-fatal error leaves the connection in service', async () => {
  const { pool, db } = setup({ max: 1 });
  await expect(pool.withLease(async (conn) => conn.query('FAIL'))).rejects.toMatchObject({ message: 'statement failed' });
  const id = await pool.withLease(async (conn) => conn.id);
  expect(id).toBe(db.connections[0]!.id);
  expect(db.connections[0]!.closed).toBe(false);
  expect(db.connections).toHaveLength(1);
});

test('a connection that dies while leased: reported, destroyed at release, never reused', async () => {
  const { pool, db } = setup({ max: 1 });
  const errors: Error[] = [];
  pool.on('error', (e) => errors.push(e));
  await pool.withLease(async (conn) => {
    db.connections[0]!.kill();
    await expect(conn.query('SELECT 1')).rejects.toMatchObject({ fatal: true });
  });
  expect(errors).toHaveLength(1);
  expect(db.connections[0]!.closed).toBe(true);
  expect(await pool.withLease(async (conn) => conn.id)).toBe(db.connections[1]!.id);
});

test('conn.destroy() (an adapter destroy method the raw connection lacks) retires the connection', async () => {
  const { pool, db } = setup({ max: 1 });
  await pool.withLease(async (conn, lease) => {
    await (conn as FakeConnection & { destroy(): Promise<void> }).destroy();
    expect(lease.state).toBe('released');
  });
  expect(db.connections[0]!.closed).toBe(true);
  expect(pool.stats().size).toBe(0);
});

test('a scope may return its connection: the promise resolves to the (now released) guard', async () => {
  const { pool } = setup();
  const conn = await pool.withLease(async (c) => c);
  expect(() => conn.query('SELECT 1')).toThrow(LeaseReleasedError);
  const lease = await pool.acquire();
  const same = await Promise.resolve(lease.conn);
  await lease.release();
  await expect(Promise.resolve(same)).resolves.toBe(same);
});
