/**
 * Helpers for the core's unit tests on the fake adapter: a pool with a capturing logger and a
 * fresh prom-client registry, metric readers, and a bounded `waitFor` for observable state.
 */
import { Registry } from 'prom-client';
import { createPool, type Logger, type Pool, type PoolOptions } from '../../src';
import { fakeAdapter, type FakeConnection, type FakeDb, type FakeDbOptions } from './fake-adapter';

export interface LogEntry {
  readonly level: 'warn' | 'error' | 'info' | 'debug';
  readonly obj: unknown;
  readonly msg: string | undefined;
}

/** A logger that records every call (tests assert on it and nothing reaches the console). */
export function captureLogger(): { logger: Logger & Required<Pick<Logger, 'info' | 'debug'>>; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at =
    (level: LogEntry['level']) =>
    (obj: unknown, msg?: string): void => {
      entries.push({ level, obj, msg });
    };
  return { entries, logger: { warn: at('warn'), error: at('error'), info: at('info'), debug: at('debug') } };
}

export interface Setup {
  readonly pool: Pool<FakeConnection>;
  readonly adapter: ReturnType<typeof fakeAdapter>;
  readonly db: FakeDb;
  readonly logs: LogEntry[];
  readonly registry: Registry;
}

const open = new Set<Pool<FakeConnection>>();

/**
 * A pool over a fresh fake database. Defaults for tests: leak detection off, a capturing logger,
 * metrics into a fresh registry. Close with `closeAll()` in `afterEach`.
 */
export function setup(options: PoolOptions = {}, fake: FakeDbOptions = {}): Setup {
  const adapter = fakeAdapter(fake);
  const { logger, entries } = captureLogger();
  const registry = new Registry();
  const pool = createPool(adapter, { leakDetectionMs: 0, logger, metrics: { registry }, ...options });
  open.add(pool);
  return { pool, adapter, db: adapter.db, logs: entries, registry };
}

/** Close every pool made by `setup` (bounded: a test that holds a lease cannot hang this). */
export async function closeAll(): Promise<void> {
  const pools = [...open];
  open.clear();
  await Promise.all(pools.map((p) => p.close({ timeoutMs: 50 })));
}

/** Value of one series (counter/gauge), or of a histogram's `_count`/`_sum` when `suffix` is given. */
export async function metric(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
  suffix?: '_count' | '_sum',
): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (m === undefined) throw new Error(`metric ${name} is not registered`);
  const data = await m.get();
  const wanted = suffix === undefined ? undefined : `${name}${suffix}`;
  // Histogram values carry `metricName` (…_bucket/_sum/_count); prom-client's type omits it.
  const values = data.values as Array<(typeof data.values)[number] & { metricName?: string }>;
  const match = values.filter(
    (v) =>
      (wanted === undefined ? v.metricName === undefined || v.metricName === name : v.metricName === wanted) &&
      Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val),
  );
  return match.reduce((sum, v) => sum + v.value, 0);
}

/** Poll `predicate` until it holds; fails with `what` after `timeoutMs`. For state another timer produces. */
export async function waitFor(what: string, predicate: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Resolve after `ms` (only to let real time pass for deadlines under test, never to wait out a race). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolve/reject exposed. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Settle a promise into a value or the error it rejected with (for asserting on error identity). */
export async function settle<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}

/** The error a promise rejects with; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  const result = await settle(promise);
  if (result.ok) throw new Error(`expected a rejection, got ${String(result.value)}`);
  return result.error;
}
