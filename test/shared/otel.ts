/**
 * The OpenTelemetry suite, written once and run on each real server (test/pg/otel.test.ts,
 * test/mysql/otel.test.ts) with the SDK's in-memory exporters: the span tree of a nested withTx
 * with a retry, acquires that waited (timed out, aborted), leak / reclaim / deadline spans, the
 * caller's context inside the body and inside the drop-in's callbacks, and every
 * `db.client.connection.*` metric after known activity, two pools on one meter kept apart.
 */
import type { Attributes } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createPool, type Adapter, type Pool, type PoolOptions, type ReclaimEvent } from '../../src';
import { activeSpanId, otelHarness, type OtelHarness } from '../helpers/otel';
import { rejection, waitFor } from '../helpers/unit';

export interface OtelTarget<C extends object> {
  /** 'pg' or 'mysql2'. */
  readonly name: string;
  adapter(): Adapter<C>;
  query(conn: C, sql: string): Promise<unknown>;
  /** A statement the server fails with an error the adapter retries (serialization failure, deadlock). */
  readonly retryableSql: string;
  /** `error.type` of that error on the retry event. */
  readonly retryableType: string;
  sleepSql(seconds: number): string;
  /** The attributes every span and metric of a pool of `adapter()` carries, besides the pool name. */
  readonly server: Attributes;
  /**
   * Through the drop-in's callback API, with tracing on: the active span id inside a `query`
   * callback and inside a `connect`/`getConnection` callback.
   */
  callbackSpanIds(h: OtelHarness): Promise<string[]>;
}

const SECONDS_HISTOGRAMS = ['db.client.connection.create_time', 'db.client.connection.wait_time', 'db.client.connection.use_time'];

export function describeOtel<C extends object>(t: OtelTarget<C>): void {
  let h: OtelHarness;
  const pools: Pool<C>[] = [];
  const make = (name: string, options: PoolOptions = {}, metrics = false): Pool<C> => {
    const pool = createPool(t.adapter(), {
      name: `otel_${t.name}_${name}`,
      leakDetectionMs: 0,
      logger: { warn: () => undefined, error: () => undefined },
      // Every wait gets its span here (minAcquireWaitMs 0): the tests count them.
      openTelemetry: metrics ? { meterProvider: h.meterProvider, tracing: false } : { tracerProvider: h.tracerProvider, metrics: false, minAcquireWaitMs: 0 },
      ...options,
    });
    pools.push(pool);
    return pool;
  };
  const attr = (span: ReadableSpan | undefined, key: string): unknown => span?.attributes[key];

  beforeEach(() => {
    h = otelHarness();
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 500 })));
    await h.shutdown();
  });

  describe(`OpenTelemetry on ${t.name}`, () => {
    test('a nested withTx with a retry: one transaction span under the caller, its acquire, a savepoint per attempt, one COMMIT event, the body in its context', async () => {
      const pool = make('tree', { max: 2 });
      let attempt = 0;
      const bodyParents: (string | undefined)[] = [];
      const innerParents: (string | undefined)[] = [];
      const requestId = await h.inSpan('request', async (span) => {
        await pool.withTx(
          async (conn) => {
            attempt++;
            bodyParents.push(activeSpanId());
            await t.query(conn, 'SELECT 1');
            await pool.withTx(async (inner) => {
              innerParents.push(activeSpanId());
              await t.query(inner, 'SELECT 2');
            });
            if (attempt === 1) await t.query(conn, t.retryableSql);
          },
          { isolation: 'serializable', retries: 2, retryBaseDelayMs: 1, retryMaxDelayMs: 5 },
        );
        return span.spanContext().spanId;
      });
      expect(attempt).toBe(2);
      const txs = h.named('leasepool.transaction');
      const top = txs.filter((s) => attr(s, 'leasepool.transaction.savepoint_depth') === undefined);
      const savepoints = txs.filter((s) => attr(s, 'leasepool.transaction.savepoint_depth') === 1);
      expect(top).toHaveLength(1);
      const tx = top[0] as ReadableSpan;
      expect(h.parentOf(tx)).toBe(requestId);
      expect(tx.attributes).toMatchObject({
        ...t.server,
        'db.client.connection.pool.name': `otel_${t.name}_tree`,
        'leasepool.transaction.isolation': 'serializable',
        'leasepool.transaction.outcome': 'commit',
        'leasepool.transaction.attempts': 2,
        'leasepool.transaction.retries': 1,
      });
      expect(tx.events.filter((e) => e.name === 'leasepool.transaction.retry').map((e) => [e.name, e.attributes?.['leasepool.transaction.attempt'], e.attributes?.['error.type']])).toEqual([['leasepool.transaction.retry', 1, t.retryableType]]);
      // One savepoint per attempt, each a child of the transaction, released.
      expect(savepoints).toHaveLength(2);
      for (const sp of savepoints) {
        expect(h.parentOf(sp)).toBe(tx.spanContext().spanId);
        expect(attr(sp, 'leasepool.transaction.outcome')).toBe('release');
      }
      // COMMIT was sent once (the first attempt rolled back): one event with its latency.
      const commits = tx.events.filter((e) => e.name === 'leasepool.commit');
      expect(commits).toHaveLength(1);
      expect(commits[0]?.attributes?.['leasepool.commit.duration_ms']).toEqual(expect.any(Number));
      expect(commits[0]?.attributes?.['error.type']).toBeUndefined();
      // The transaction's own acquire waited for a new connection: an event of the transaction span
      // (which covers the wait), not a span of its own.
      expect(h.named('leasepool.acquire')).toEqual([]);
      const acquired = tx.events.filter((e) => e.name === 'leasepool.acquire');
      expect(acquired.map((e) => [e.attributes?.['leasepool.acquire.outcome'], e.attributes?.['leasepool.acquire.queue_position']])).toEqual([['success', 1]]);
      expect(acquired[0]?.attributes?.['leasepool.acquire.wait_ms']).toEqual(expect.any(Number));
      // The body runs with the transaction's span active; a nested body with its savepoint's.
      expect(bodyParents).toEqual([tx.spanContext().spanId, tx.spanContext().spanId]);
      expect(innerParents.sort()).toEqual(savepoints.map((s) => s.spanContext().spanId).sort());
    });

    test('an acquire that timed out, and one that was aborted: their spans, children of the caller, with queue position and outcome; a withTx whose acquire timed out', async () => {
      const pool = make('waits', { max: 1 });
      const held = await pool.acquire();
      const requestId = await h.inSpan('request', async (span) => {
        expect(await rejection(pool.acquire({ timeoutMs: 100 }))).toMatchObject({ code: 'ACQUIRE_TIMEOUT' });
        const controller = new AbortController();
        const aborted = pool.acquire({ signal: controller.signal });
        controller.abort(new Error('client went away'));
        expect(await rejection(aborted)).toMatchObject({ message: 'client went away' });
        return span.spanContext().spanId;
      });
      await held.release();
      const waits = h.named('leasepool.acquire').filter((s) => h.parentOf(s) === requestId);
      expect(waits.map((s) => [s.attributes['leasepool.acquire.outcome'], s.attributes['leasepool.acquire.queue_position'], s.status.code])).toEqual([
        ['timeout', 1, 2],
        ['aborted', 1, 2],
      ]);
      expect(waits[0]?.attributes['error.type']).toBe('ACQUIRE_TIMEOUT');
      expect(waits[0]?.attributes).toMatchObject(t.server);
      // A full queue refuses at once: a span with outcome rejected.
      const full = make('full', { max: 1, maxWaiting: 0 });
      const only = await full.acquire();
      await h.inSpan('request', async () => {
        expect(await rejection(full.acquire())).toMatchObject({ code: 'POOL_QUEUE_FULL' });
      });
      await only.release();
      const refused = h.named('leasepool.acquire').filter((s) => s.attributes['leasepool.acquire.outcome'] === 'rejected');
      expect(refused.map((s) => [s.attributes['error.type'], s.status.code, s.attributes['db.client.connection.pool.name']])).toEqual([['POOL_QUEUE_FULL', 2, `otel_${t.name}_full`]]);
      // A withTx whose acquire times out: its transaction span fails with the timeout, the wait an event of it.
      const again = await pool.acquire();
      expect(await rejection(pool.withTx(() => undefined, { acquireTimeoutMs: 50 }))).toMatchObject({ code: 'ACQUIRE_TIMEOUT' });
      await again.release();
      const tx = h.named('leasepool.transaction').at(-1);
      expect(tx?.attributes).toMatchObject({ 'leasepool.transaction.outcome': 'rollback', 'error.type': 'ACQUIRE_TIMEOUT' });
      expect(tx?.events.map((e) => [e.name, e.attributes?.['leasepool.acquire.outcome'], e.attributes?.['leasepool.acquire.queue_position']])).toEqual([['leasepool.acquire', 'timeout', 1]]);
    });

    test('a leaked lease: a leak span and a reclaim span with the acquire stack; a deadline: its own span, no stack, the transaction span failed', async () => {
      const pool = make('leaks', { max: 2, leakDetectionMs: 40, leaseTimeoutMs: 250 });
      const reclaimed = new Promise<ReclaimEvent>((resolve) => pool.once('reclaim', resolve));
      const leaked = await pool.acquire();
      await t.query(leaked.conn, 'SELECT 1');
      await reclaimed;
      const [leak] = h.named('leasepool.leak');
      expect(leak?.attributes).toMatchObject({ ...t.server, 'leasepool.lease.id': leaked.id });
      expect(String(leak?.attributes['leasepool.lease.acquire_stack'])).toContain('otel.ts');
      const [reclaim] = h.named('leasepool.reclaim');
      expect(reclaim?.attributes).toMatchObject({ 'leasepool.recovery.kind': 'leak_reclaimed', 'leasepool.lease.id': leaked.id });
      expect(String(reclaim?.attributes['leasepool.lease.acquire_stack'])).toContain('otel.ts');

      const err = await rejection(pool.withTx((conn) => t.query(conn, t.sleepSql(5)), { timeoutMs: 30 }));
      expect(err).toMatchObject({ code: 'LEASE_TIMEOUT' });
      await waitFor('the deadline span', () => h.named('leasepool.deadline').length === 1);
      const [deadline] = h.named('leasepool.deadline');
      expect(deadline?.attributes).toMatchObject({ 'leasepool.recovery.kind': 'deadline', 'leasepool.lease.timeout_ms': 30 });
      expect(deadline?.attributes['leasepool.lease.acquire_stack']).toBeUndefined();
      const tx = h.named('leasepool.transaction').at(-1);
      expect(tx?.attributes).toMatchObject({ 'leasepool.transaction.outcome': 'rollback', 'error.type': 'LEASE_TIMEOUT' });
      expect(tx?.status.code).toBe(2);
    });

    test("the caller's context reaches the drop-in's callbacks", async () => {
      const { ids, requestId } = await h.inSpan('request', async (span) => ({ ids: await t.callbackSpanIds(h), requestId: span.spanContext().spanId }));
      expect(ids.length).toBeGreaterThanOrEqual(2);
      expect(ids).toEqual(ids.map(() => requestId));
    });

    test('every db.client.connection metric after known activity; two pools on one meter keep their own values; a closed pool is no longer observed', async () => {
      const a = make('metrics_a', { max: 2, min: 1 }, true);
      const b = make('metrics_b', { max: 3 }, true);
      const A = { 'db.client.connection.pool.name': `otel_${t.name}_metrics_a` };
      const B = { 'db.client.connection.pool.name': `otel_${t.name}_metrics_b` };
      for (let i = 0; i < 4; i++) await a.withLease((conn) => t.query(conn, 'SELECT 1'));
      await b.withLease((conn) => t.query(conn, 'SELECT 1'));
      // A: both connections leased, one caller waiting.
      const [l1, l2] = [await a.acquire(), await a.acquire()];
      const waiting = a.acquire();
      await waitFor('the waiter is queued', () => a.stats().pending === 1);
      expect(await h.value('db.client.connection.count', { ...A, 'db.client.connection.state': 'used' })).toBe(2);
      expect(await h.value('db.client.connection.count', { ...A, 'db.client.connection.state': 'idle' })).toBe(0);
      expect(await h.value('db.client.connection.pending_requests', A)).toBe(1);
      expect(await h.value('db.client.connection.max', A)).toBe(2);
      expect(await h.value('db.client.connection.idle.max', A)).toBe(2);
      expect(await h.value('db.client.connection.idle.min', A)).toBe(1);
      expect(await h.value('db.client.connection.timeouts', A)).toBe(0);
      expect(await rejection(a.acquire({ timeoutMs: 50 }))).toMatchObject({ code: 'ACQUIRE_TIMEOUT' });
      expect(await h.value('db.client.connection.timeouts', A)).toBe(1);
      await l1.release();
      const l3 = await waiting;
      await Promise.all([l2.release(), l3.release()]);
      // Histograms, in seconds: one wait and one use per lease, one create per connection opened.
      expect(await h.value('db.client.connection.wait_time', A)).toBe(7);
      expect(await h.value('db.client.connection.use_time', A)).toBe(7);
      expect(await h.value('db.client.connection.create_time', A)).toBe(a.stats().size);
      for (const name of SECONDS_HISTOGRAMS) {
        const [point] = await h.points(name, A);
        expect(point?.attributes).toMatchObject(t.server);
        const histogram = point?.value as { sum: number; count: number };
        expect(histogram.sum).toBeGreaterThanOrEqual(0);
        expect(histogram.sum / histogram.count).toBeLessThan(5); // seconds, not milliseconds
      }
      expect(await h.value('db.client.connection.count', { ...A, 'db.client.connection.state': 'idle' })).toBe(2);
      // B saw its own activity only.
      expect(await h.value('db.client.connection.wait_time', B)).toBe(1);
      expect(await h.value('db.client.connection.count', { ...B, 'db.client.connection.state': 'idle' })).toBe(1);
      expect(await h.value('db.client.connection.max', B)).toBe(3);
      expect(await h.value('db.client.connection.idle.min', B)).toBe(0);
      expect(await h.value('db.client.connection.timeouts', B)).toBe(0);
      // Closed, A is no longer asked for its gauges (its callback is removed from the meter); B still is.
      await a.close();
      const asked = jest.spyOn(a, 'gaugeSnapshot');
      const askedB = jest.spyOn(b, 'gaugeSnapshot');
      expect(await h.value('db.client.connection.max', B)).toBe(3);
      expect(asked).not.toHaveBeenCalled();
      expect(askedB).toHaveBeenCalled();
    });
  });
}
