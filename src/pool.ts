/**
 * The pool: the public class, and the wiring of its parts. generic-pool underneath for the raw
 * connections (generic-pool-internals.ts, connections.ts); acquiring a lease (acquire.ts,
 * waiters.ts); running a body in it (scope.ts, transaction.ts); the release path (release.ts);
 * leaks (leaks.ts, reports.ts); close (close.ts); metrics (metrics.ts).
 */
import { EventEmitter } from 'node:events';
import type { Pool as GenericPool } from 'generic-pool';
import { Acquirer } from './acquire';
import { validateAdapter, type Adapter, type QueryFunction } from './adapter';
import { closePool } from './close';
import { createFactory, PooledConnection } from './connections';
import { abandonedScope, endedScopeError, findAmbient, joinRefusal } from './context';
import { AcquireTimeoutError, CleanupError, ConfigError, ConnectError } from './errors';
import { createConnectionPool, evictNow, poolStats, returnIdle } from './generic-pool-internals';
import { guardConfigOf } from './guard';
import { ActiveLeases, Lease, LeaseRecord, type ActiveLeaseInfo, type CallSite } from './lease';
import type { GuardConfig, LeaseOwner } from './lease-record';
import { captureSite, LeakDetector, StackSampler } from './leaks';
import { consoleLogger, type Logger } from './logger';
import { combineSinks, createPromMetrics, NOOP_METRICS, type CloseReason, type GaugeSource, type MetricsSink, type RecoveryKind } from './metrics';
import { check, checkCallOptions, maxFor, resolvePoolOptions, type PoolOptions, type ResolvedPoolOptions } from './options';
import type { AcquireOptions, CloseSummary, LeaseScopeOptions, PoolEvents, PoolStats } from './pool-types';
import { queryOn } from './query';
import { reclaimLease, releaseLease } from './release';
import { describeLease, reportCleanupErrors, reportConnectionError, reportLeak, reportLeakReturned, reportReclaim } from './reports';
import { joinScope, runAndReleaseScope, startScope, type PendingAcquire } from './scope';
import { createTelemetry } from './telemetry/otel';
import type { PoolTracer } from './telemetry/types';
import { now } from './time';
import { runTransaction, type Transaction, type TxOptions } from './transaction';
import { noteStatementError } from './tx-frame';
import { WaitingRoom } from './waiters';

export type { AcquireOptions, CloseSummary, DeadlineEvent, LeakEvent, LeakReturnedEvent, LeaseScopeOptions, PoolEvents, PoolStats, ReclaimEvent } from './pool-types';

const ACQUIRE_OPTIONS = { timeoutMs: { allowInfinity: true } } as const;
// A hold deadline of Infinity would be a timer firing at once: leave timeoutMs out instead.
const LEASE_SCOPE_OPTIONS = { timeoutMs: { allowInfinity: false }, acquireTimeoutMs: { allowInfinity: true } } as const;

/** Bound on each statement the pool sends on its own behalf (rollback, reset, cancel). */
const CONTROL_TIMEOUT_MS = 2_000;

/**
 * A connection pool whose leases release themselves. Create with `createPool(adapter, options)`.
 * @typeParam C - the driver's connection type (`pg.Client`, a mysql2 promise connection, …).
 */
export class Pool<C extends object = object, Q extends QueryFunction = QueryFunction> extends EventEmitter<PoolEvents> {
  readonly name: string;
  readonly adapter: Adapter<C>;
  /**
   * Run one statement, typed as the driver's `query` (pg: `QueryResult`; mysql2: `[rows, fields]`;
   * PGlite: `Results`). Inside a scope of this pool (`withLease`, `withTx`) it runs on that scope's
   * connection, so it takes part in its transaction; elsewhere in a lease of its own, released when
   * the statement settles.
   */
  readonly query: Q;
  /** @internal */ readonly options: ResolvedPoolOptions;
  /** @internal */ readonly guardConfig: GuardConfig;
  /** @internal */ readonly metrics: MetricsSink;
  /** @internal OpenTelemetry spans, when the `openTelemetry` option turns them on. */ readonly tracer: PoolTracer | undefined;
  /** @internal */ readonly logger: Logger;
  /** @internal */ readonly resetOnRelease: boolean;
  /** @internal */ readonly maxUses: number;
  /** @internal */ readonly controlTimeoutMs = CONTROL_TIMEOUT_MS;
  /** Active leases in acquire order (the leak detector relies on the order). */
  readonly #active = new ActiveLeases<C>();
  readonly #gp: GenericPool<PooledConnection<C>>;
  readonly #factory: ReturnType<typeof createFactory<C>>;
  readonly #waiters: WaitingRoom<C>;
  readonly #leaks: LeakDetector<C>;
  /** How acquire stacks are taken: every time, within a rate, or (undefined) never. */
  readonly #stacks: StackSampler | 'all' | undefined;
  readonly #dropped: FinalizationRegistry<LeaseRecord<C>>;
  readonly #acquirer: Acquirer<C>;
  readonly #max: number;
  #closing: Promise<CloseSummary> | undefined;
  #closed = false;
  #onDrained: (() => void) | undefined;
  /** Leases reclaimed (deadline, GC) after close() began: not "released" in its summary. */
  #reclaimedWhileClosing = 0;

  /** @internal use `createPool` */
  constructor(adapter: Adapter<C, Q>, input?: PoolOptions) {
    super();
    const options = resolvePoolOptions(input);
    validateAdapter(adapter);
    this.query = queryOn(this, adapter);
    this.options = options;
    this.name = options.name;
    this.adapter = adapter;
    this.logger = options.logger ?? consoleLogger(options.name);
    this.resetOnRelease = options.resetOnRelease;
    this.maxUses = options.maxUses;
    this.#max = maxFor(adapter, options, input?.max !== undefined, this.logger);
    this.guardConfig = guardConfigOf(adapter);
    const telemetry = createTelemetry(options.openTelemetry, this, Math.min(options.min, this.#max));
    this.tracer = telemetry?.tracer;
    this.metrics = combineSinks(options.metrics === false ? NOOP_METRICS : createPromMetrics(options.metrics, this), telemetry?.metrics);

    this.#factory = createFactory(
      adapter,
      { connectTimeoutMs: options.connectTimeoutMs, maxLifetimeMs: options.maxLifetimeMs, closeTimeoutMs: CONTROL_TIMEOUT_MS, connectFailure: options.connectFailure },
      {
        created: (conn, createSeconds) => {
          this.metrics.connectionCreated(createSeconds);
          // Idle until leased (acquire refs it again).
          if (this.options.allowExitOnIdle) this.adapter.refConnection?.(conn.raw, false);
        },
        connectFailed: (error, startedAt) => this.#failWaiters(error, startedAt),
        connectionError: (conn, err) => this.#onConnectionError(conn, err),
        closed: (conn, reason) => {
          // Idle connections closed by close() are closed for shutdown, not for idleness.
          if (conn.closeReason === undefined && this.#closed) reason = 'shutdown';
          this.metrics.connectionClosed(reason);
          if (reason === 'broken') this.metrics.recovery('broken_connection');
        },
        closeFailed: (_conn, err) => this.logger.debug?.({ pool: this.name, err }, 'closing a connection failed'),
      },
    );
    const { idleTimeoutMs, maxLifetimeMs } = options;
    this.#gp = createConnectionPool(this.#factory, { max: this.#max, min: Math.min(options.min, this.#max), idleTimeoutMs, maxLifetimeMs });
    this.#waiters = new WaitingRoom(this.#gp, this.#max, {
      timeoutError: (timeoutMs) => new AcquireTimeoutError(this.name, timeoutMs, this.stats()),
      failed: (reason) => this.metrics.acquireFailed(reason),
      returnToPool: (conn) => this.returnToPool(conn),
    });

    const stacksPerSecond = options.leakDetectionMs > 0 ? options.leakStacksPerSecond : 0;
    this.#stacks = stacksPerSecond === Infinity ? 'all' : stacksPerSecond > 0 ? new StackSampler(stacksPerSecond) : undefined;
    this.#leaks = new LeakDetector(this.#active, options.leakDetectionMs, (record) => reportLeak(this, record), this.#stacks instanceof StackSampler ? this.#stacks : undefined);
    this.#leaks.start();
    this.#dropped = new FinalizationRegistry((record) => this.#onDropped(record));
    this.#acquirer = new Acquirer(this, this.#gp, this.#waiters, this.#active, this.#dropped);
  }

  // ---------------------------------------------------------------- public API

  /**
   * Borrow a connection. Release it with `lease.release()` or `await using`.
   * Inside a scope of this pool (withLease/withTx) that already holds a lease, an acquire that
   * would wait on an exhausted pool fails with `NestedAcquireError` instead of deadlocking.
   */
  acquire(options?: AcquireOptions): Promise<Lease<C>> {
    try {
      checkCallOptions(options, ACQUIRE_OPTIONS);
    } catch (err) {
      return Promise.reject(err);
    }
    const site = this.captureAcquireSite(this.acquire);
    const abandoned = abandonedScope(this);
    if (abandoned !== undefined) return Promise.reject(abandoned);
    const timeoutMs = options?.timeoutMs ?? this.options.acquireTimeoutMs;
    return this.acquireLease(timeoutMs, options?.signal, site, undefined, true);
  }

  /**
   * Run `fn` with a leased connection; the lease is released however `fn` ends (return, throw,
   * deadline). Inside a scope of this pool it joins the ambient lease (same connection).
   */
  withLease<R>(fn: (conn: C, lease: Lease<C>) => R | PromiseLike<R>, options?: LeaseScopeOptions): Promise<R> {
    try {
      checkCallOptions(options, LEASE_SCOPE_OPTIONS);
    } catch (err) {
      return Promise.reject(err);
    }
    const ambient = findAmbient(this);
    if (ambient !== undefined) {
      const refused = joinRefusal(ambient);
      return refused === undefined ? joinScope(fn, ambient.lease) : Promise.reject(refused);
    }
    return this.#scope(fn, undefined, options, this.captureAcquireSite(this.withLease), undefined);
  }

  /**
   * Run `fn` in a transaction: COMMIT on success, ROLLBACK on throw (the original error is
   * rethrown). Nested in a transaction of this pool it becomes a savepoint.
   */
  withTx<R>(fn: (conn: C, tx: Transaction<C>) => R | PromiseLike<R>, options?: TxOptions): Promise<R> {
    const site = this.captureAcquireSite(this.withTx);
    return runTransaction(this, fn, options, site);
  }

  /** Counts for dashboards and debugging. */
  stats(): PoolStats {
    return poolStats(this.#gp, this.#factory, this.#waiters, this.#max, this.#closed);
  }

  /** Every active lease, oldest first: what is holding the pool. */
  activeLeases(): ActiveLeaseInfo[] {
    const out: ActiveLeaseInfo[] = [];
    for (const record of this.#active) out.push(describeLease(this.adapter, record));
    return out;
  }
  /** @internal What the lease inspector reads (src/inspector/): the active leases, oldest first, and the waiting room. */
  inspectorView(): { readonly active: ActiveLeases<C>; readonly waiters: WaitingRoom<C> } {
    return { active: this.#active, waiters: this.#waiters };
  }

  /**
   * Stop new acquires (`PoolClosedError`), wait for active leases until `timeoutMs`, reclaim the
   * rest, close idle connections. Never hangs; a second call returns the same promise.
   */
  close(options?: { timeoutMs?: number | undefined }): Promise<CloseSummary> {
    if (this.#closing !== undefined) return this.#closing;
    const timeoutMs = options?.timeoutMs ?? 10_000;
    const problems: { field: string; problem: string }[] = [];
    check.duration(problems, 'timeoutMs', timeoutMs, { allowZero: true, allowInfinity: false });
    if (problems.length > 0) return Promise.reject(new ConfigError(problems));
    this.#closing = this.#runClose(timeoutMs);
    return this.#closing;
  }

  // ---------------------------------------------------------------- internals

  /** @internal True once close() began: acquires are refused. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * @internal The caller of `entry` (a public method), for leak reports: when leak detection is
   * on, within `leakStacksPerSecond`. Call it first thing, before any await.
   */
  captureAcquireSite(entry: Function): CallSite | undefined {
    const stacks = this.#stacks;
    if (stacks === undefined) return undefined;
    return stacks === 'all' ? captureSite(entry) : stacks.capture(entry);
  }

  /** @internal Acquire a lease; `site` is captured by the public entry point before any await. */
  acquireLease(timeoutMs: number, signal: AbortSignal | undefined, site: CallSite | undefined, holdTimeoutMs: number | undefined, trackDrop: boolean): Promise<Lease<C>> {
    return this.#acquirer.acquire(timeoutMs, signal, site, holdTimeoutMs, trackDrop);
  }

  /**
   * @internal A scope (as withLease's) for a body that sends one statement on the lease's raw connection with the
   * driver's callback API and calls no pool method (a drop-in's `pool.query()`): it reports its
   * outcome through `done` instead of a promise, so the scope needs no promise of the body's, no
   * guarded connection and no ambient scope. `done(error)` fails the scope (any error other than
   * `undefined`/`null`), `done(undefined, value)` settles it; later calls, and a call after the
   * lease was revoked, are ignored. `mapError` (the drop-ins) rewrites the error the scope rejects
   * with, without a `.catch` and its promise per call: `started` is false for a failed acquire,
   * true for the body's error or the revoke reason.
   */
  scopedCallback<R>(
    send: (lease: Lease<C>, done: (error: unknown, value?: R) => void) => void,
    options: LeaseScopeOptions | undefined,
    site: CallSite | undefined,
    mapError?: (error: unknown, started: boolean) => unknown,
  ): Promise<R> {
    return this.#scope(undefined, send, options, site, mapError);
  }

  #scope<R>(
    fn: ((conn: C, lease: Lease<C>) => R | PromiseLike<R>) | undefined,
    send: ((lease: Lease<C>, done: (error: unknown, value?: R) => void) => void) | undefined,
    options: LeaseScopeOptions | undefined,
    site: CallSite | undefined,
    mapError: ((error: unknown, started: boolean) => unknown) | undefined,
  ): Promise<R> {
    let pending: PendingAcquire<C>;
    try {
      pending = this.#acquirer.start(options?.acquireTimeoutMs ?? this.options.acquireTimeoutMs, options?.signal, site, options?.timeoutMs, false);
    } catch (err) {
      return Promise.reject(mapError === undefined ? err : mapError(err, false));
    }
    return startScope(pending, fn, send, this, mapError);
  }

  /** @internal The scope protocol for a body of its own (withTx's): see `runAndReleaseScope`. */
  runAndRelease<R>(leaseOrAcquire: Lease<C> | Promise<Lease<C>>, body: (lease: Lease<C>) => R | PromiseLike<R>): Promise<R> {
    return runAndReleaseScope(leaseOrAcquire, body);
  }

  /** @internal */
  releaseFromHandle(record: LeaseRecord<C>): Promise<void> {
    if (record.releasing !== undefined) return record.releasing.then(ignore, ignore);
    this.#dropped.unregister(record);
    return releaseLease(record).then((errors) => {
      if (errors.length > 0) throw new CleanupError(errors);
    });
  }

  /** @internal */
  noteError(record: LeaseRecord<C>, err: unknown): void {
    noteStatementError(this.adapter, record, err);
  }

  /** @internal The error for a statement sent from inside a transaction frame of `record` that has ended. */
  scopeEnded(record: LeaseRecord<C>): Error | undefined {
    return endedScopeError(record);
  }

  /** @internal */
  forget(record: LeaseRecord<C>, outcome: 'released' | 'reclaimed'): void {
    this.#active.delete(record);
    record.connection.leased = false;
    if (outcome === 'reclaimed' && this.#closed) this.#reclaimedWhileClosing++;
    if (record.leakReported && outcome === 'released') reportLeakReturned(this, record);
    if (this.#active.size === 0) this.#onDrained?.();
  }

  /** @internal A healthy connection goes to the longest-waiting caller, else back to generic-pool. */
  returnToPool(conn: PooledConnection<C>): void {
    if (!this.#gp.isBorrowedResource(conn)) return;
    // Called for a hand-off too: adapters pair onLease/onIdle (the drop-ins' release events).
    this.adapter.onIdle?.(conn.raw);
    if (this.#waiters.handOff(conn)) return;
    if (this.options.allowExitOnIdle) this.adapter.refConnection?.(conn.raw, false);
    if (!returnIdle(this.#gp, conn)) void this.#gp.release(conn);
  }

  /**
   * @internal Close `conn` now if it is idle, counted as `reason` (the pg drop-in's per-client
   * idle and lifetime timers, as pg-pool runs them). Does nothing to a leased connection.
   */
  retireIdle(conn: PooledConnection<C>, reason: CloseReason): void {
    if (conn.leased || conn.closeReason !== undefined) return;
    conn.closeReason = reason;
    evictNow(this.#gp as GenericPool<unknown>);
  }

  /** @internal */
  destroyConnection(conn: PooledConnection<C>, reason: CloseReason): void {
    conn.closeReason = reason;
    if (!this.#gp.isBorrowedResource(conn)) return;
    void this.#gp.destroy(conn);
    // Its slot is free: a caller waiting for a release may need a new connection instead.
    this.#waiters.pump();
  }

  /** @internal */
  reportCleanupErrors(record: LeaseRecord<C>, errors: readonly unknown[]): void {
    reportCleanupErrors(this, record, errors);
  }

  /** @internal */
  reportReclaim(record: LeaseRecord<C>, kind: RecoveryKind, reason: Error): void {
    reportReclaim(this, record, kind, reason);
  }

  /** @internal GaugeSource */
  gaugeSnapshot(): ReturnType<GaugeSource['gaugeSnapshot']> {
    const { idle, active, size, max, pending } = this.stats();
    const first = this.#active.first;
    const oldestLeaseSeconds = first === undefined ? 0 : (now() - first.acquiredAt) / 1000;
    return { idle, active, pendingCreate: Math.max(0, this.#gp.size - size), max, pending, oldestLeaseSeconds };
  }

  #failWaiters(error: ConnectError, startedAt: number): void {
    // The database is unreachable: waiting callers get the real error at once, not a timeout later.
    const received = this.#waiters.failConnect(error, startedAt, this.options.connectFailure === 'one');
    // The callers have the error; a log line too is only for those who ask (logConnectErrors).
    if (!received || this.options.logConnectErrors) this.logger.warn({ pool: this.name, err: error }, `pool "${this.name}": ${error.message}`);
  }

  #onConnectionError(conn: PooledConnection<C>, err: unknown): void {
    const first = !conn.broken;
    conn.markBroken(err);
    if (!first) return;
    // An idle connection that broke is closed now, not at the next eviction run.
    if (!conn.leased) evictNow(this.#gp as GenericPool<unknown>);
    reportConnectionError(this, conn, err);
  }

  #onDropped(record: LeaseRecord<C>): void {
    if (record.state !== 'active') return;
    void reclaimLease(record, 'gc_reclaimed', new Error(`lease #${record.id} was garbage-collected without release()`));
  }

  #runClose(timeoutMs: number): Promise<CloseSummary> {
    this.#closed = true;
    const { name, adapter, metrics, logger } = this;
    const parts = { name, adapter, metrics, logger, gp: this.#gp, factory: this.#factory, waiters: this.#waiters, leaks: this.#leaks, active: this.#active };
    return closePool(
      {
        ...parts,
        controlTimeoutMs: CONTROL_TIMEOUT_MS,
        onDrained: (callback) => (this.#onDrained = callback),
        reclaimedWhileClosing: () => this.#reclaimedWhileClosing,
      },
      timeoutMs,
    );
  }
}

const ignore = (): void => undefined;

// The internal contracts Pool fulfils, checked here rather than by `implements` (their members are
// @internal, stripped from the published typings, where an `implements` clause would not hold).
type Holds<T extends true> = T;
type _PoolContracts = Holds<Pool extends LeaseOwner<object> & GaugeSource ? true : false>;

/** Create a pool. Invalid options throw one `ConfigError` naming every bad field. */
export function createPool<C extends object, Q extends QueryFunction = QueryFunction>(adapter: Adapter<C, Q>, options?: PoolOptions): Pool<C, Q> {
  return new Pool(adapter, options);
}
