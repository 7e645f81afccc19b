/**
 * createPool options: defaults, validation into ONE ConfigError naming every bad field, accepted
 * edge values, and the adapter's connection cap.
 */
import { Registry } from 'prom-client';
import { ConfigError, createPool, type PoolOptions } from '../../src';
import { fakeAdapter } from '../helpers/fake-adapter';
import { captureLogger, closeAll, setup } from '../helpers/unit';

afterEach(closeAll);

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

test('defaults', async () => {
  const pool = createPool(fakeAdapter(), { logger: captureLogger().logger });
  try {
    expect(pool.options).toMatchObject({
      name: 'default',
      max: 10,
      min: 0,
      acquireTimeoutMs: 10_000,
      connectTimeoutMs: 5_000,
      maxWaiting: Infinity,
      idleTimeoutMs: 30_000,
      maxLifetimeMs: 1_800_000,
      maxUses: Infinity,
      leakDetectionMs: 30_000,
      leakStacksPerSecond: 100,
      leaseTimeoutMs: undefined,
      resetOnRelease: false,
      metrics: false,
    });
    expect(pool.name).toBe('default');
    expect(pool.stats()).toEqual({ size: 0, idle: 0, active: 0, pending: 0, max: 10, min: 0, closed: false });
  } finally {
    await pool.close();
  }
});

test('every invalid option is reported at once in one ConfigError', () => {
  const bad = {
    name: 'has spaces!',
    max: -1,
    min: 1.5,
    acquireTimeoutMs: NaN,
    connectTimeoutMs: -5,
    maxWaiting: -1,
    idleTimeoutMs: NaN,
    maxLifetimeMs: 0,
    maxUses: 0,
    leakDetectionMs: -1,
    leaseTimeoutMs: NaN,
    resetOnRelease: 'yes',
    metrics: { registry: {} },
    logger: { warn() {} },
    maxConnections: 5,
    idleTimeout: 1000,
  } as unknown as PoolOptions;
  const err = configError(() => createPool(fakeAdapter(), bad));
  expect(err.code).toBe('INVALID_CONFIG');
  expect([...err.fields].sort()).toEqual(
    [
      'name',
      'max',
      'min',
      'acquireTimeoutMs',
      'connectTimeoutMs',
      'maxWaiting',
      'idleTimeoutMs',
      'maxLifetimeMs',
      'maxUses',
      'leakDetectionMs',
      'leaseTimeoutMs',
      'resetOnRelease',
      'metrics',
      'logger',
      'maxConnections',
      'idleTimeout',
    ].sort(),
  );
  // The message names each problem, so one read tells the user everything.
  for (const field of err.fields) expect(err.message).toContain(field);
});

test.each<[string, PoolOptions, string[]]>([
  ['non-integer max', { max: 2.5 }, ['max']],
  ['zero max', { max: 0 }, ['max']],
  ['Infinity max (not allowed)', { max: Infinity }, ['max']],
  ['negative min', { min: -1 }, ['min']],
  ['min > max', { min: 5, max: 2 }, ['min']],
  ['string timeout', { acquireTimeoutMs: '100' as unknown as number }, ['acquireTimeoutMs']],
  ['zero acquire timeout', { acquireTimeoutMs: 0 }, ['acquireTimeoutMs']],
  ['Infinity connect timeout (not allowed)', { connectTimeoutMs: Infinity }, ['connectTimeoutMs']],
  ['negative idle timeout', { idleTimeoutMs: -1 }, ['idleTimeoutMs']],
  ['non-integer maxWaiting', { maxWaiting: 1.5 }, ['maxWaiting']],
  ['non-integer maxUses', { maxUses: 2.5 }, ['maxUses']],
  ['NaN leakDetectionMs', { leakDetectionMs: NaN }, ['leakDetectionMs']],
  ['negative leakStacksPerSecond', { leakStacksPerSecond: -1 }, ['leakStacksPerSecond']],
  ['NaN leakStacksPerSecond', { leakStacksPerSecond: NaN }, ['leakStacksPerSecond']],
  ['zero leaseTimeoutMs', { leaseTimeoutMs: 0 }, ['leaseTimeoutMs']],
  ['null leaseTimeoutMs', { leaseTimeoutMs: null as unknown as number }, ['leaseTimeoutMs']],
  ['metrics: true', { metrics: true as unknown as false }, ['metrics']],
  ['metrics without registry', { metrics: {} as unknown as false }, ['metrics']],
  ['logger null', { logger: null as unknown as undefined }, ['logger']],
  ['logger without error()', { logger: { warn() {} } as unknown as undefined }, ['logger']],
  ['logger a string', { logger: 'console' as unknown as undefined }, ['logger']],
  ['empty name', { name: '' }, ['name']],
  ['unknown key', { maxConnection: 3 } as unknown as PoolOptions, ['maxConnection']],
])('%s → ConfigError naming %j', (_label, options, fields) => {
  const err = configError(() => createPool(fakeAdapter(), options));
  expect(err.fields).toEqual(fields);
});

test('options that are not an object are a ConfigError', () => {
  expect(configError(() => createPool(fakeAdapter(), 5 as unknown as PoolOptions)).fields).toEqual(['options']);
  expect(configError(() => createPool(fakeAdapter(), null as unknown as PoolOptions)).fields).toEqual(['options']);
});

test('an object that is not an adapter is a ConfigError', () => {
  expect(configError(() => createPool({} as never)).fields).toEqual(['adapter']);
  expect(configError(() => createPool(null as never)).fields).toEqual(['adapter']);
});

test('valid edge values are accepted', async () => {
  const { pool } = setup({
    name: 'edge.pool:1-a_b',
    max: 1,
    min: 1,
    acquireTimeoutMs: Infinity,
    maxWaiting: Infinity,
    idleTimeoutMs: Infinity,
    maxLifetimeMs: Infinity,
    maxUses: Infinity,
    leakDetectionMs: 0,
    leaseTimeoutMs: undefined,
    resetOnRelease: true,
    metrics: false,
  });
  expect(pool.options).toMatchObject({ acquireTimeoutMs: Infinity, maxUses: Infinity, leakDetectionMs: 0, min: 1, max: 1 });
  // The pool works with those values.
  await expect(pool.withLease(async (conn) => conn.query('SELECT 1'))).resolves.toEqual({ rows: [] });
  const { pool: zeroWaiting } = setup({ maxWaiting: 0, maxUses: 1, max: 3 });
  expect(zeroWaiting.options.maxWaiting).toBe(0);
  const { pool: withRegistry } = setup({ metrics: { registry: new Registry() } });
  expect(withRegistry.options.metrics).not.toBe(false);
  const { pool: withConsole } = setup({ logger: console });
  expect(withConsole.options.logger).toBe(console);
});

test("max above the adapter's limit is clamped, with a warning", async () => {
  const { logger, entries } = captureLogger();
  const pool = createPool(fakeAdapter({ maxConnections: 1 }), { max: 5, leakDetectionMs: 0, logger });
  try {
    expect(pool.stats().max).toBe(1);
    expect(entries.filter((e) => e.level === 'warn').map((e) => e.msg)).toEqual([expect.stringContaining('clamped to 1')]);
    // Really one connection: a second acquire waits rather than opening another.
    const lease = await pool.acquire();
    await expect(pool.acquire({ timeoutMs: 20 })).rejects.toMatchObject({ code: 'ACQUIRE_TIMEOUT' });
    await lease.release();
  } finally {
    await pool.close();
  }
});

test('close() options are validated too', async () => {
  const { pool } = setup();
  await expect(pool.close({ timeoutMs: -1 })).rejects.toMatchObject({ code: 'INVALID_CONFIG', fields: ['timeoutMs'] });
  // A rejected close does not close the pool.
  expect(pool.stats().closed).toBe(false);
  await expect(pool.withLease(async () => 1)).resolves.toBe(1);
});

test('resetOnRelease with an adapter that cannot reset is refused (no option silently does nothing)', () => {
  const adapter = fakeAdapter();
  const noReset = { ...adapter, reset: undefined };
  const err = configError(() => createPool(noReset, { resetOnRelease: true, logger: captureLogger().logger }));
  expect(err.fields).toEqual(['resetOnRelease']);
  expect(err.message).toContain('fake');
});

describe('per-call options are validated too', () => {
  test.each<[string, object, string[]]>([
    ['NaN acquire timeout', { timeoutMs: NaN }, ['timeoutMs']],
    ['negative acquire timeout', { timeoutMs: -1 }, ['timeoutMs']],
    ['string acquire timeout', { timeoutMs: '100' }, ['timeoutMs']],
    ['signal that is not an AbortSignal', { signal: { aborted: false } }, ['signal']],
    ['misspelt key', { timeout: 100 }, ['timeout']],
  ])('acquire(): %s → ConfigError', async (_label, options, fields) => {
    const { pool, db } = setup();
    await expect(pool.acquire(options as never)).rejects.toMatchObject({ code: 'INVALID_CONFIG', fields });
    expect(db.connectAttempts).toBe(0);
  });

  test.each<[string, object, string[]]>([
    ['NaN deadline', { timeoutMs: NaN }, ['timeoutMs']],
    ['zero deadline', { timeoutMs: 0 }, ['timeoutMs']],
    ['negative acquire timeout', { acquireTimeoutMs: -5 }, ['acquireTimeoutMs']],
    ['misspelt key', { timeoutMS: 100 }, ['timeoutMS']],
    ['several at once', { timeoutMs: -1, acquireTimeoutMs: NaN, signal: 'x' }, ['timeoutMs', 'acquireTimeoutMs', 'signal']],
  ])('withLease(): %s → ConfigError, the callback never runs', async (_label, options, fields) => {
    const { pool, db } = setup();
    let ran = false;
    const err = await pool
      .withLease(() => {
        ran = true;
      }, options as never)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect([...(err as ConfigError).fields].sort()).toEqual([...fields].sort());
    expect(ran).toBe(false);
    expect(db.connectAttempts).toBe(0);
  });

  test('valid per-call options are accepted', async () => {
    const { pool } = setup();
    const lease = await pool.acquire({ timeoutMs: Infinity, signal: new AbortController().signal });
    await lease.release();
    await expect(pool.withLease(async () => 1, { timeoutMs: 1_000, acquireTimeoutMs: Infinity, signal: undefined })).resolves.toBe(1);
    await expect(pool.acquire(undefined).then((l) => l.release())).resolves.toBeUndefined();
  });
});

test('a finite duration beyond the timer range is refused (Node would fire such a timer after 1 ms)', async () => {
  const huge = 2 ** 31; // ms, about 24.9 days: one more than setTimeout can hold
  const err = configError(() =>
    createPool(fakeAdapter(), { acquireTimeoutMs: huge, connectTimeoutMs: huge, leaseTimeoutMs: huge, logger: captureLogger().logger }),
  );
  expect([...err.fields].sort()).toEqual(['acquireTimeoutMs', 'connectTimeoutMs', 'leaseTimeoutMs']);
  // The largest timer value works as a (very long) timeout, not as 1 ms.
  const { pool } = setup({ max: 1, acquireTimeoutMs: 2 ** 31 - 1 });
  const held = await pool.acquire();
  const waiting = pool.acquire();
  let settled = false;
  void waiting.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(settled).toBe(false);
  await held.release();
  await (await waiting).release();
});

test('the default max is fitted to the adapter without a warning', async () => {
  const { logger, entries } = captureLogger();
  const pool = createPool(fakeAdapter({ maxConnections: 1 }), { leakDetectionMs: 0, logger });
  try {
    expect(pool.stats().max).toBe(1);
    expect(entries.filter((e) => e.level === 'warn')).toEqual([]);
  } finally {
    await pool.close();
  }
});

test('an unknown option close to a known one gets "did you mean"', () => {
  const fields = (options: Record<string, unknown>): string[] => {
    try {
      createPool(fakeAdapter(), options as PoolOptions);
    } catch (err) {
      return (err as Error).message.split('\n');
    }
    throw new Error('no ConfigError');
  };
  expect(fields({ leakDetectionMS: 1000 }).join('\n')).toContain('leakDetectionMS is not a known option (did you mean leakDetectionMs?)');
  expect(fields({ idleTimeoutMillis: 1000 }).join('\n')).not.toContain('did you mean');
  expect(fields({ maxWaitng: 3 }).join('\n')).toContain('(did you mean maxWaiting?)');
  expect(fields({ zzz: 1 }).join('\n')).not.toContain('did you mean');
});

test('options set to undefined are the defaults (exactOptionalPropertyTypes callers)', async () => {
  const pool = createPool(fakeAdapter(), { max: undefined, leakDetectionMs: undefined, allowExitOnIdle: undefined, logger: undefined, metrics: undefined });
  try {
    expect(pool.stats().max).toBe(10);
    await pool.withTx(async () => undefined, { isolation: undefined, retries: undefined, timeoutMs: undefined, signal: undefined });
    await pool.withLease(async () => undefined, { timeoutMs: undefined, acquireTimeoutMs: undefined, signal: undefined });
    await (await pool.acquire({ timeoutMs: undefined, signal: undefined })).release();
  } finally {
    await pool.close({ timeoutMs: undefined });
  }
});
