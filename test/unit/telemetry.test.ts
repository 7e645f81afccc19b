/**
 * The `openTelemetry` option around its optional peer: validated like every option, a clear
 * ConfigError when `@opentelemetry/api` is not installed, nothing of it loaded while the option is
 * off, and the OpenTelemetry metrics recorded next to the Prometheus ones, not instead of them.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { ConfigError, createPool, type LeakEvent } from '../../src';
import { fakeAdapter } from '../helpers/fake-adapter';
import { otelHarness } from '../helpers/otel';
import { closeAll, metric, rejection, setup } from '../helpers/unit';

afterEach(closeAll);

const ROOT = path.resolve(__dirname, '../..');

/** In a fresh Node process: create a pool (with `options`), run a transaction, list the @opentelemetry modules loaded. */
function loadedOtelModules(options: string): string[] {
  const script = `
    const { createPool } = require('./src');
    const { fakeAdapter } = require('./test/helpers/fake-adapter');
    const pool = createPool(fakeAdapter(), ${options});
    pool.withTx((conn) => conn.query('SELECT 1'))
      .then(() => pool.close())
      .then(() => console.log(JSON.stringify(Object.keys(require.cache).filter((k) => k.includes('@opentelemetry')).map((k) => k.slice(k.indexOf('@opentelemetry'))))));
  `;
  const run = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  if (run.status !== 0) throw new Error(`child failed (${run.status}): ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').at(-1) as string) as string[];
}

describe('openTelemetry option', () => {
  test('bad values name every bad field at createPool', () => {
    let err: unknown;
    try {
      createPool(fakeAdapter(), { openTelemetry: { tracing: 'yes', bogus: 1, tracerProvider: {}, meterProvider: 3 } as never });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect([...(err as ConfigError).fields].sort()).toEqual(['openTelemetry.bogus', 'openTelemetry.meterProvider', 'openTelemetry.tracerProvider', 'openTelemetry.tracing']);
    expect(() => createPool(fakeAdapter(), { openTelemetry: 'on' as never })).toThrow(/openTelemetry must be a boolean/);
  });

  test('without @opentelemetry/api installed: a ConfigError saying what to install; a pool without the option is unaffected', () => {
    jest.isolateModules(() => {
      jest.doMock('@opentelemetry/api', () => {
        throw new Error("Cannot find module '@opentelemetry/api'");
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const isolated = require('../../src') as typeof import('../../src');
      let err: unknown;
      try {
        isolated.createPool(fakeAdapter(), { openTelemetry: true });
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'INVALID_CONFIG', fields: ['openTelemetry'] });
      expect((err as Error).message).toContain('npm install @opentelemetry/api');
      const plain = isolated.createPool(fakeAdapter(), { openTelemetry: false });
      void plain.close();
    });
    jest.dontMock('@opentelemetry/api');
  });

  test('off, nothing of OpenTelemetry is loaded; on, the API is (and no SDK)', () => {
    expect(loadedOtelModules('{ metrics: false }')).toEqual([]);
    expect(loadedOtelModules('{ openTelemetry: false }')).toEqual([]);
    const on = loadedOtelModules('{ openTelemetry: true }');
    expect(on.length).toBeGreaterThan(0);
    expect(on.every((m) => m.startsWith('@opentelemetry/api/'))).toBe(true);
  }, 60_000);

  test('OpenTelemetry metrics are recorded next to the Prometheus ones', async () => {
    const h = otelHarness();
    const registry = new Registry();
    const { pool } = setup({ name: 'otel_both', metrics: { registry }, openTelemetry: { meterProvider: h.meterProvider, tracing: false } });
    for (let i = 0; i < 3; i++) await pool.withLease((c) => c.query('SELECT 1'));
    expect(await metric(registry, 'leasepool_acquires_total', { pool: 'otel_both', outcome: 'success' })).toBe(3);
    expect(await h.value('db.client.connection.wait_time', { 'db.client.connection.pool.name': 'otel_both' })).toBe(3);
    await h.shutdown();
  });

  test('an acquire span for a wait of at least minAcquireWaitMs, or a failed one; none for a hand-off', async () => {
    const h = otelHarness();
    const { pool } = setup({ name: 'otel_waits', max: 1, openTelemetry: { tracerProvider: h.tracerProvider, metrics: false, minAcquireWaitMs: 200 } });
    const first = await pool.acquire();
    const handedOff = pool.acquire();
    await first.release(); // at once: the waiter gets the connection within microseconds
    const second = await handedOff;
    const long = pool.acquire();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await second.release();
    await (await long).release();
    const held = await pool.acquire();
    await expect(pool.acquire({ timeoutMs: 1 })).rejects.toMatchObject({ code: 'ACQUIRE_TIMEOUT' });
    await held.release();
    const spans = h.named('leasepool.acquire').map((s) => ({ outcome: s.attributes['leasepool.acquire.outcome'], ms: (s.duration[0] * 1e9 + s.duration[1]) / 1e6 }));
    expect(spans.map((s) => s.outcome)).toEqual(['success', 'timeout']);
    expect(spans[0]!.ms).toBeGreaterThanOrEqual(290); // the span covers the wait: it starts when the wait did
    await h.shutdown();
  });

  test('a tracer and a meter that throw on every call change nothing the pool does; a provider that throws at once is a ConfigError', async () => {
    const boom = (): never => {
      throw new Error('telemetry backend failed');
    };
    const throwingTracer = { startSpan: boom, startActiveSpan: boom };
    const throwingInstrument = { record: boom, add: boom, addCallback: boom, removeCallback: boom };
    const throwingMeter = {
      createHistogram: () => throwingInstrument,
      createCounter: () => throwingInstrument,
      createUpDownCounter: () => throwingInstrument,
      createGauge: () => throwingInstrument,
      createObservableGauge: () => throwingInstrument,
      createObservableCounter: () => throwingInstrument,
      createObservableUpDownCounter: () => throwingInstrument,
      addBatchObservableCallback: () => undefined,
      removeBatchObservableCallback: () => undefined,
    };
    const { pool, db } = setup({
      name: 'otel_throwing',
      max: 1,
      leakDetectionMs: 20,
      openTelemetry: { tracerProvider: { getTracer: () => throwingTracer }, meterProvider: { getMeter: () => throwingMeter }, minAcquireWaitMs: 0, traceIdleAcquires: true },
    });
    await expect(pool.withTx(async (c) => (await c.query('INSERT'), 'done'))).resolves.toBe('done');
    expect(db.connections[0]!.log).toEqual(['BEGIN', 'INSERT', 'COMMIT']);
    await expect(pool.withTx(() => Promise.reject(new Error('body failed')))).rejects.toThrow('body failed');
    const held = await pool.acquire();
    await expect(pool.acquire({ timeoutMs: 5 })).rejects.toMatchObject({ code: 'ACQUIRE_TIMEOUT' });
    const leaked = await new Promise<LeakEvent>((resolve) => pool.once('leak', resolve)); // the leak detector's timer survived its span
    expect(leaked.id).toBe(held.id);
    await held.release();
    const err = await rejection(pool.withTx(() => new Promise(() => undefined), { timeoutMs: 10 }));
    expect(err).toMatchObject({ code: 'LEASE_TIMEOUT' });
    expect(() => createPool(fakeAdapter(), { openTelemetry: { tracerProvider: { getTracer: boom } } })).toThrow(/openTelemetry\.tracerProvider threw when asked/);
  });

  test('tracing through the global tracer provider (no SDK registered: the API no-op tracer) changes no result', async () => {
    const { pool } = setup({ name: 'otel_global', openTelemetry: { metrics: false, traceIdleAcquires: true } });
    await expect(pool.withTx(async (c) => (await c.query('SELECT 1'), 42))).resolves.toBe(42);
    await expect(pool.withTx(() => Promise.reject(new Error('body failed')))).rejects.toThrow('body failed');
  });
});
