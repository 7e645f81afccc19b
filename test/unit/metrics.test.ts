/**
 * Metrics into the registry the user passes: the fixed names, the `pool` label on every series,
 * counters and histograms fed by the pool, gauges computed at scrape time.
 */
import { Registry, register as globalRegistry } from 'prom-client';
import { ConfigError, createPool } from '../../src';
import { fakeAdapter } from '../helpers/fake-adapter';
import { captureLogger, closeAll, metric, setup } from '../helpers/unit';

afterEach(closeAll);

const NAMES = [
  'leasepool_lease_duration_seconds',
  'leasepool_acquire_wait_seconds',
  'leasepool_transaction_duration_seconds',
  'leasepool_connections',
  'leasepool_connections_max',
  'leasepool_acquires_pending',
  'leasepool_lease_oldest_seconds',
  'leasepool_acquires_total',
  'leasepool_transactions_total',
  'leasepool_connections_created_total',
  'leasepool_connections_closed_total',
  'leasepool_leaks_detected_total',
  'leasepool_recoveries_total',
];

test('every fixed metric is registered in the given registry, and every series has a pool label', async () => {
  const { pool, registry } = setup({ name: 'm_names' });
  await pool.withTx(async (conn) => conn.query('X'));
  const json = await registry.getMetricsAsJSON();
  expect(json.map((m) => m.name).sort()).toEqual([...NAMES].sort());
  for (const m of json) {
    for (const v of m.values) expect([m.name, (v.labels as Record<string, unknown>)['pool']]).toEqual([m.name, 'm_names']);
  }
  const types = Object.fromEntries(json.map((m) => [m.name, m.type]));
  expect(types).toMatchObject({
    leasepool_lease_duration_seconds: 'histogram',
    leasepool_connections: 'gauge',
    leasepool_acquires_total: 'counter',
  });
});

test('the global prom-client registry is never touched', async () => {
  const { pool } = setup({ name: 'm_global' });
  await pool.withLease(async () => undefined);
  expect(globalRegistry.getSingleMetric('leasepool_acquires_total')).toBeUndefined();
});

test('counters and histograms follow the workload', async () => {
  const { pool, registry } = setup({ name: 'm_work', max: 2 });
  const labels = { pool: 'm_work' };
  for (let i = 0; i < 3; i++) await pool.withLease(async () => undefined);
  await pool.withTx(async () => undefined);
  await expect(pool.withTx(async () => Promise.reject(new Error('x')))).rejects.toThrow('x');
  expect(await metric(registry, 'leasepool_acquires_total', { ...labels, outcome: 'success' })).toBe(5);
  expect(await metric(registry, 'leasepool_acquire_wait_seconds', labels, '_count')).toBe(5);
  expect(await metric(registry, 'leasepool_lease_duration_seconds', labels, '_count')).toBe(5);
  expect(await metric(registry, 'leasepool_transactions_total', { ...labels, outcome: 'commit' })).toBe(1);
  expect(await metric(registry, 'leasepool_transactions_total', { ...labels, outcome: 'rollback' })).toBe(1);
  expect(await metric(registry, 'leasepool_transaction_duration_seconds', { ...labels, outcome: 'rollback' }, '_count')).toBe(1);
  expect(await metric(registry, 'leasepool_connections_created_total', labels)).toBe(1);
  // Zero series exist up front, so dashboards show 0 rather than "no data".
  const acquires = await registry.getSingleMetric('leasepool_acquires_total')!.get();
  expect(acquires.values.map((v) => v.labels['outcome']).sort()).toEqual(['aborted', 'error', 'rejected', 'success', 'timeout']);
});

test('gauges are computed at scrape time', async () => {
  const { pool, registry } = setup({ name: 'm_gauges', max: 2 });
  const labels = { pool: 'm_gauges' };
  expect(await metric(registry, 'leasepool_connections_max', labels)).toBe(2);
  expect(await metric(registry, 'leasepool_lease_oldest_seconds', labels)).toBe(0);
  const a = await pool.acquire();
  const b = await pool.acquire();
  const waiting = pool.acquire();
  await new Promise((resolve) => setTimeout(resolve, 15));
  expect(await metric(registry, 'leasepool_connections', { ...labels, state: 'active' })).toBe(2);
  expect(await metric(registry, 'leasepool_connections', { ...labels, state: 'idle' })).toBe(0);
  expect(await metric(registry, 'leasepool_acquires_pending', labels)).toBe(1);
  expect(await metric(registry, 'leasepool_lease_oldest_seconds', labels)).toBeGreaterThanOrEqual(0.01);
  await a.release();
  const c = await waiting;
  await b.release();
  await c.release();
  expect(await metric(registry, 'leasepool_connections', { ...labels, state: 'idle' })).toBe(2);
  expect(await metric(registry, 'leasepool_connections', { ...labels, state: 'active' })).toBe(0);
  expect(await metric(registry, 'leasepool_acquires_pending', labels)).toBe(0);
  expect(await metric(registry, 'leasepool_lease_oldest_seconds', labels)).toBe(0);
});

test('pending_create counts connections being opened', async () => {
  const { pool, registry, db } = setup({ name: 'm_pending' }, { connectDelayMs: 30 });
  const lease = pool.acquire();
  expect(await metric(registry, 'leasepool_connections', { pool: 'm_pending', state: 'pending_create' })).toBe(1);
  await (await lease).release();
  expect(db.connections).toHaveLength(1);
  expect(await metric(registry, 'leasepool_connections', { pool: 'm_pending', state: 'pending_create' })).toBe(0);
});

test('two pools share a registry, told apart by the pool label; a duplicate name is refused until closed', async () => {
  const registry = new Registry();
  const { logger } = captureLogger();
  const a = createPool(fakeAdapter(), { name: 'm_a', metrics: { registry }, leakDetectionMs: 0, logger });
  const b = createPool(fakeAdapter(), { name: 'm_b', metrics: { registry }, leakDetectionMs: 0, logger });
  try {
    await a.withLease(async () => undefined);
    await b.withLease(async () => undefined);
    await b.withLease(async () => undefined);
    expect(await metric(registry, 'leasepool_acquires_total', { pool: 'm_a', outcome: 'success' })).toBe(1);
    expect(await metric(registry, 'leasepool_acquires_total', { pool: 'm_b', outcome: 'success' })).toBe(2);
    let dup: unknown;
    try {
      createPool(fakeAdapter(), { name: 'm_a', metrics: { registry }, logger });
    } catch (err) {
      dup = err;
    }
    expect(dup).toBeInstanceOf(ConfigError);
    expect((dup as ConfigError).fields).toEqual(['name']);
    await a.close();
    // Gauges of a closed pool vanish; its counters keep their values.
    expect(await metric(registry, 'leasepool_connections_max', { pool: 'm_a' })).toBe(0);
    expect(await metric(registry, 'leasepool_acquires_total', { pool: 'm_a', outcome: 'success' })).toBe(1);
    const again = createPool(fakeAdapter(), { name: 'm_a', metrics: { registry }, leakDetectionMs: 0, logger });
    await again.close();
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('a custom prefix; invalid prefix or buckets are ConfigErrors', async () => {
  const registry = new Registry();
  const { pool } = setup({ name: 'm_prefix', metrics: { registry, prefix: 'app_db_', buckets: [0.001, 0.1, 1] } });
  await pool.withLease(async () => undefined);
  expect(await metric(registry, 'app_db_acquires_total', { pool: 'm_prefix', outcome: 'success' })).toBe(1);
  expect(registry.getSingleMetric('leasepool_acquires_total')).toBeUndefined();
  expect(() => createPool(fakeAdapter(), { metrics: { registry: new Registry(), prefix: 'bad prefix' } })).toThrow(ConfigError);
  expect(() => createPool(fakeAdapter(), { metrics: { registry: new Registry(), buckets: [1, 0.5] } })).toThrow(ConfigError);
});
