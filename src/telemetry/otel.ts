/**
 * The `openTelemetry` option over `@opentelemetry/api`, an optional peer dependency: required
 * here, at `createPool`, only when the option is on (a pool without it never loads the module).
 * Spans for acquires that waited, transactions (with their COMMIT), leaks, reclaims and deadlines;
 * the semantic-convention pool metrics (otel-metrics.ts).
 */
import type * as Api from '@opentelemetry/api';
import type { Adapter, BeginOptions } from '../adapter';
import { ConfigError, TxOutcomeUnknownError } from '../errors';
import type { GaugeSource, MetricsSink } from '../metrics';
import type { PoolEvents } from '../pool-types';
import { createOtelMetrics } from './otel-metrics';
import { now } from '../time';
import type { AcquireSpanOutcome, OpenTelemetryOptions, PoolTracer, TxSpan } from './types';

/** The pool as its telemetry sees it. */
export interface TelemetryHost extends GaugeSource {
  readonly adapter: Adapter<object>;
  on<E extends keyof PoolEvents>(event: E, listener: (...args: PoolEvents[E]) => void): unknown;
}

export interface Telemetry {
  readonly tracer: PoolTracer | undefined;
  readonly metrics: MetricsSink | undefined;
}

const INSTRUMENTATION = 'leasepool';

/** The pool's telemetry for its `openTelemetry` option (`undefined`: off). Throws `ConfigError` without `@opentelemetry/api`. */
export function createTelemetry(option: OpenTelemetryOptions | boolean | undefined, host: TelemetryHost, min: number): Telemetry | undefined {
  if (option === undefined || option === false) return undefined;
  const opts: OpenTelemetryOptions = option === true ? {} : option;
  const tracing = opts.tracing ?? true;
  const metrics = opts.metrics ?? true;
  if (!tracing && !metrics) return undefined;
  const api = loadApi();
  const attributes = baseAttributes(host);
  return {
    tracer: tracing ? new OtelTracer(api, tracerOf(api, opts), host, attributes, opts.traceIdleAcquires === true, opts.minAcquireWaitMs ?? 1) : undefined,
    metrics: metrics ? fromProvider('openTelemetry.meterProvider', () => createOtelMetrics(meterOf(api, opts), host, attributes, min)) : undefined,
  };
}

function loadApi(): typeof Api {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@opentelemetry/api') as typeof Api;
  } catch {
    throw new ConfigError([{ field: 'openTelemetry', problem: 'needs the optional peer dependency @opentelemetry/api (npm install @opentelemetry/api)' }]);
  }
}

function tracerOf(api: typeof Api, opts: OpenTelemetryOptions): Api.Tracer {
  const provider = (opts.tracerProvider as Api.TracerProvider | undefined) ?? api.trace.getTracerProvider();
  return fromProvider('openTelemetry.tracerProvider', () => provider.getTracer(INSTRUMENTATION));
}

function meterOf(api: typeof Api, opts: OpenTelemetryOptions): Api.Meter {
  const provider = (opts.meterProvider as Api.MeterProvider | undefined) ?? api.metrics.getMeterProvider();
  return fromProvider('openTelemetry.meterProvider', () => provider.getMeter(INSTRUMENTATION));
}

function fromProvider<T>(field: string, get: () => T): T {
  try {
    return get();
  } catch (err) {
    throw new ConfigError([{ field, problem: `threw when asked for leasepool's tracer or meter: ${err instanceof Error ? err.message : String(err)}` }]);
  }
}

/** Who the pool talks to, as the database semantic conventions name it. */
function baseAttributes(host: TelemetryHost): Api.Attributes {
  const attributes: Api.Attributes = { 'db.client.connection.pool.name': host.name };
  const server = host.adapter.server;
  if (server !== undefined) {
    attributes['db.system.name'] = server.system;
    if (server.address !== undefined) attributes['server.address'] = server.address;
    if (server.port !== undefined) attributes['server.port'] = server.port;
    if (server.namespace !== undefined && server.namespace !== '') attributes['db.namespace'] = server.namespace;
  }
  return attributes;
}

class OtelTracer implements PoolTracer {
  readonly idleAcquire: (() => void) | undefined;

  constructor(
    private readonly api: typeof Api,
    private readonly tracer: Api.Tracer,
    host: TelemetryHost,
    private readonly attributes: Api.Attributes,
    traceIdleAcquires: boolean,
    private readonly minAcquireWaitMs: number,
  ) {
    this.idleAcquire = traceIdleAcquires ? () => this.#instant('leasepool.acquire', { 'leasepool.acquire.outcome': 'success', 'leasepool.acquire.waited': false }) : undefined;
    // Leaks, reclaims and deadlines happen in timers, outside any caller's context: their own spans.
    host.on('leak', (e) => this.#instant('leasepool.leak', { 'leasepool.lease.id': e.id, 'leasepool.lease.age_ms': e.ageMs, 'leasepool.lease.in_transaction': e.inTransaction, 'leasepool.lease.acquire_stack': e.stack ?? '' }));
    host.on('reclaim', (e) =>
      this.#instant(
        'leasepool.reclaim',
        { 'leasepool.recovery.kind': e.kind, 'leasepool.lease.id': e.id, 'leasepool.lease.age_ms': e.ageMs, 'leasepool.lease.in_transaction': e.inTransaction, 'leasepool.lease.acquire_stack': e.stack ?? '' },
        e.reason,
      ),
    );
    host.on('deadline', (e) =>
      this.#instant('leasepool.deadline', {
        'leasepool.recovery.kind': 'deadline',
        'leasepool.lease.id': e.id,
        'leasepool.lease.age_ms': e.ageMs,
        'leasepool.lease.in_transaction': e.inTransaction,
        'leasepool.lease.timeout_ms': e.timeoutMs ?? -1,
      }),
    );
  }

  acquireWaiting(wait: Promise<unknown>, queuePosition: number, signal: AbortSignal | undefined, startedAt: number): void {
    const tx = this.#acquiringTx;
    if (tx !== undefined) {
      wait.then(
        () => tx.waited(startedAt, queuePosition, 'success', this.minAcquireWaitMs),
        (err: unknown) => tx.waited(startedAt, queuePosition, acquireOutcome(err, signal), 0),
      );
      return;
    }
    // The span is made when the wait is over, and only for one long enough (or failed): most waits
    // on a busy pool are hand-offs of a few microseconds.
    const parent = this.api.context.active();
    const span = (outcome: AcquireSpanOutcome, error?: unknown): void => {
      try {
        const attributes: Api.Attributes = { ...this.attributes, 'leasepool.acquire.queue_position': queuePosition, 'leasepool.acquire.waited': true, 'leasepool.acquire.outcome': outcome };
        const s = this.tracer.startSpan('leasepool.acquire', { attributes, startTime: performance.timeOrigin + startedAt }, parent);
        if (error !== undefined) fail(this.api, s, error);
        s.end();
      } catch {
        // A tracer that throws must not reject anything of the pool's (this runs in a promise reaction).
      }
    };
    wait.then(
      () => {
        if (now() - startedAt >= this.minAcquireWaitMs) span('success');
      },
      (err: unknown) => span(acquireOutcome(err, signal), err),
    );
  }

  acquireRejected(error: Error): void {
    const tx = this.#acquiringTx;
    if (tx !== undefined) return tx.waited(now(), 0, 'rejected', 0);
    try {
      const s = this.tracer.startSpan('leasepool.acquire', { attributes: { ...this.attributes, 'leasepool.acquire.waited': false, 'leasepool.acquire.outcome': 'rejected' } });
      fail(this.api, s, error);
      s.end();
    } catch {
      // The caller is to get the pool's error, not the tracer's.
    }
  }

  /** @internal The transaction whose own acquire is being started (see `TxSpan.acquire`). */
  #acquiringTx: OtelTxSpan | undefined = undefined;

  /** @internal */
  acquiringFor<T>(tx: OtelTxSpan, acquire: () => T): T {
    const previous = this.#acquiringTx;
    this.#acquiringTx = tx;
    try {
      return acquire();
    } finally {
      this.#acquiringTx = previous;
    }
  }

  transaction<R>(begin: BeginOptions, depth: number, run: (span: TxSpan) => Promise<R>): Promise<R> {
    const { api } = this;
    // Only what differs from the defaults: the SDK checks every attribute against its limits.
    let attributes = this.attributes;
    if (depth > 1 || begin.isolation !== undefined || begin.readOnly !== undefined) {
      attributes = { ...attributes };
      if (depth > 1) attributes['leasepool.transaction.savepoint_depth'] = depth - 1;
      if (begin.isolation !== undefined) attributes['leasepool.transaction.isolation'] = begin.isolation;
      if (begin.readOnly !== undefined) attributes['leasepool.transaction.read_only'] = begin.readOnly;
    }
    let span: Api.Span;
    let context: Api.Context;
    try {
      span = this.tracer.startSpan('leasepool.transaction', { attributes });
      context = api.trace.setSpan(api.context.active(), span);
    } catch {
      // A tracer that throws costs the transaction its span, nothing else.
      return run(UNTRACED);
    }
    const tx = new OtelTxSpan(this, span);
    let running: Promise<R>;
    try {
      running = api.context.with(context, run, undefined, tx);
    } catch (err) {
      tx.end('rollback', err);
      throw err;
    }
    return running.then(
      (result) => {
        tx.end(depth === 1 ? 'commit' : 'release', undefined);
        return result;
      },
      (err: unknown) => {
        tx.end(err instanceof TxOutcomeUnknownError ? 'unknown' : 'rollback', err);
        throw err;
      },
    );
  }

  /** @internal */
  fail(span: Api.Span, error: unknown): void {
    fail(this.api, span, error);
  }

  #instant(name: string, attributes: Api.Attributes, error?: Error): void {
    try {
      const span = this.tracer.startSpan(name, { attributes: { ...this.attributes, ...attributes } });
      if (error !== undefined) span.setAttribute('leasepool.reason', error.message);
      span.end();
    } catch {
      // Runs in the pool's timers (leak detector, deadlines): a throwing tracer must not crash them.
    }
  }
}

class OtelTxSpan implements TxSpan {
  #retries = 0;

  constructor(
    private readonly owner: OtelTracer,
    private readonly span: Api.Span,
  ) {}

  acquire<T>(acquire: () => T): T {
    return this.owner.acquiringFor(this, acquire);
  }

  /** The transaction's own acquire waited (an event when long enough, or failed). */
  // Each of these runs inside the transaction's own steps: what the span throws is dropped.

  waited(startedAt: number, queuePosition: number, outcome: AcquireSpanOutcome, minMs: number): void {
    const waitMs = now() - startedAt;
    if (outcome === 'success' && waitMs < minMs) return;
    quietly(() => this.span.addEvent('leasepool.acquire', { 'leasepool.acquire.queue_position': queuePosition, 'leasepool.acquire.wait_ms': waitMs, 'leasepool.acquire.outcome': outcome }));
  }

  retry(attempt: number, error: unknown): void {
    this.#retries++;
    quietly(() => this.span.addEvent('leasepool.transaction.retry', { 'leasepool.transaction.attempt': attempt, 'error.type': errorType(error) }));
  }

  committed(startedAt: number, error?: unknown): void {
    const attributes: Api.Attributes = { 'leasepool.commit.duration_ms': now() - startedAt };
    if (error !== undefined) attributes['error.type'] = errorType(error);
    quietly(() => this.span.addEvent('leasepool.commit', attributes));
  }

  end(outcome: 'commit' | 'release' | 'rollback' | 'unknown', error: unknown): void {
    quietly(() => {
      this.span.setAttribute('leasepool.transaction.outcome', outcome);
      if (this.#retries > 0) {
        this.span.setAttribute('leasepool.transaction.attempts', this.#retries + 1);
        this.span.setAttribute('leasepool.transaction.retries', this.#retries);
      }
      if (error !== undefined) this.owner.fail(this.span, error);
      this.span.end();
    });
  }
}

/** What a transaction gets when its span could not be made. */
const UNTRACED: TxSpan = { acquire: (acquire) => acquire(), retry: () => undefined, committed: () => undefined };

/** Run `fn`, dropping what it throws: telemetry never changes what the pool does. */
function quietly(fn: () => void): void {
  try {
    fn();
  } catch {
    // dropped on purpose
  }
}

function acquireOutcome(err: unknown, signal: AbortSignal | undefined): AcquireSpanOutcome {
  if (signal?.aborted === true && err === signal.reason) return 'aborted';
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ACQUIRE_TIMEOUT') return 'timeout';
  if (code === 'POOL_CLOSED' || code === 'POOL_QUEUE_FULL') return 'rejected';
  return 'error';
}

function errorType(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' || typeof code === 'number') return String(code);
  return error instanceof Error ? error.name : typeof error;
}

function fail(api: typeof Api, span: Api.Span, error: unknown): void {
  span.setAttribute('error.type', errorType(error));
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
}
