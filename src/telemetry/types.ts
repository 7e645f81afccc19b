/**
 * What the pool asks of its telemetry, in the pool's own terms: no OpenTelemetry type appears
 * here, so nothing that imports this module (and no published type) needs `@opentelemetry/api`.
 * The implementation over the OpenTelemetry API is otel.ts, loaded only when the option is on.
 */
import type { BeginOptions } from '../adapter';

/**
 * `openTelemetry` pool option: spans and semantic-convention metrics through the optional peer
 * dependency `@opentelemetry/api` (install it next to your SDK). Off when omitted or `false`;
 * `true` turns on both tracing and metrics with the global tracer and meter providers.
 */
export interface OpenTelemetryOptions {
  /** Spans `leasepool.acquire`, `leasepool.transaction` (with a `leasepool.commit` event), `leasepool.leak`, `leasepool.reclaim`, `leasepool.deadline`. Default `true`. */
  tracing?: boolean | undefined;
  /** The `db.client.connection.*` metrics. Default `true`. */
  metrics?: boolean | undefined;
  /** A `TracerProvider` of `@opentelemetry/api`; default the global one (`trace.getTracerProvider()`). */
  tracerProvider?: object | undefined;
  /** A `MeterProvider` of `@opentelemetry/api`; default the global one (`metrics.getMeterProvider()`). */
  meterProvider?: object | undefined;
  /**
   * A `leasepool.acquire` span for an acquire that waited at least this long (one that failed always
   * has one). Below it a wait is a hand-off between callers, and a span for each would cost more
   * than the wait. `0`: every wait. Default 1.
   */
  minAcquireWaitMs?: number | undefined;
  /** Also a `leasepool.acquire` span for an acquire that found an idle connection at once. Default `false`. */
  traceIdleAcquires?: boolean | undefined;
}

/** How an acquire that waited ended, as its span says. */
export type AcquireSpanOutcome = 'success' | 'timeout' | 'aborted' | 'rejected' | 'error';

/** One open `leasepool.transaction` span (top level or savepoint). */
export interface TxSpan {
  /**
   * Run `acquire` (which starts the transaction's own acquire, synchronously) so that its wait is an
   * event of this span rather than a span of its own: the transaction span already covers it.
   */
  acquire<T>(acquire: () => T): T;
  /** A failed attempt is rolled back and rerun (attempt is the one that failed). */
  retry(attempt: number, error: unknown): void;
  /** COMMIT, sent at `startedAt` (`now()`), got its answer (or `error`): the `leasepool.commit` event. */
  committed(startedAt: number, error?: unknown): void;
}

/** Per-pool tracing, called on the pool's paths only when tracing is on. */
export interface PoolTracer {
  /** An acquire waits since `startedAt` (`now()`): a span until the connection (or the failure) arrives, if long enough. */
  acquireWaiting(wait: Promise<unknown>, queuePosition: number, signal: AbortSignal | undefined, startedAt: number): void;
  /** An acquire was refused at once (closed pool, full queue, nested-acquire deadlock). */
  acquireRejected(error: Error): void;
  /** An acquire took an idle connection at once (only when `traceIdleAcquires`). */
  readonly idleAcquire: (() => void) | undefined;
  /**
   * Run a transaction (`depth` 1) or a savepoint (`depth` > 1) inside its span, the span being the
   * active context of everything `run` starts (the acquire, the body and its statements).
   */
  transaction<R>(begin: BeginOptions, depth: number, run: (span: TxSpan) => Promise<R>): Promise<R>;
}
