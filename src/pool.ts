/**
 * The pool: generic-pool underneath for the raw connections; leases, the ambient context,
 * deadlines, leak detection, metrics and shutdown on top. The release path itself lives in
 * `release.ts`; transactions in `transaction.ts`.
 */
import { EventEmitter } from 'node:events';
import type { Pool as GenericPool } from 'generic-pool';
import type { Adapter } from './adapter';
import { createFactory, PooledConnection } from './connections';
import { enterScope, findAmbient, leaveScope } from './context';
import {
  AcquireTimeoutError,
  attachSuppressed,
  CleanupError,
  ConfigError,
  ConnectError,
  LeaseTimeoutError,
  NestedAcquireError,
  PoolClosedError,
  PoolQueueFullError,
} from './errors';
import { createGenericPool, evictNow, rejectAllRequests, returnIdle, takeIdle } from './generic-pool-internals';
import type { GuardConfig, MethodKind } from './guard';
import { ActiveLeases, Lease, LeaseRecord, type ActiveLeaseInfo, type CallSite } from './lease';
import { captureSite, formatSite, LeakDetector, StackSampler } from './leaks';
import { consoleLogger, type Logger } from './logger';
import { createPromMetrics, NOOP_METRICS, type CloseReason, type GaugeSource, type MetricsSink, type RecoveryKind } from './metrics';
import { check, checkCallOptions, resolvePoolOptions, type PoolOptions, type ResolvedPoolOptions } from './options';
import { RELEASED_CLEAN, reclaimLease, releaseLease, type LeaseOwner } from './release';
import { runTransaction, type Transaction, type TxOptions } from './transaction';
import { now, withTimeout } from './time';
import { WaitingRoom } from './waiters';

/** Options of `pool.acquire()`. */
export interface AcquireOptions {
  /** Abort the wait; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Longest wait for this acquire, overriding the pool's `acquireTimeoutMs`. */
  timeoutMs?: number;
}

/** Options of `pool.withLease()`. */
export interface LeaseScopeOptions {
  /** Abort the wait for a connection. */
  signal?: AbortSignal;
  /** Deadline for holding the lease: at expiry it is revoked and the call rejects with `LeaseTimeoutError`. */
  timeoutMs?: number;
  /** Longest wait for a connection, overriding the pool's `acquireTimeoutMs`. */
  acquireTimeoutMs?: number;
}

/** `pool.stats()`. */
export interface PoolStats {
  /** Open connections (idle + leased). */
  readonly size: number;
  readonly idle: number;
  /** Leased connections. */
  readonly active: number;
  /** Callers waiting for a connection. */
  readonly pending: number;
  readonly max: number;
  readonly min: number;
  readonly closed: boolean;
}

/** What `close()` resolves to. */
export interface CloseSummary {
  /** Leases given back by their holders while the pool waited. */
  readonly released: number;
  /** Leases the pool took back: at the deadline, or earlier by their own deadline or the GC while close() waited. */
  readonly reclaimed: number;
}

/** Payload of the `'leak'` event. */
export interface LeakEvent extends ActiveLeaseInfo {}

/** Payload of the `'leakReturned'` event: a lease reported as leaked came back. */
export interface LeakReturnedEvent {
  readonly id: number;
  readonly heldMs: number;
}

/** Payload of the `'reclaim'` event. */
export interface ReclaimEvent extends ActiveLeaseInfo {
  readonly kind: RecoveryKind;
  readonly reason: Error;
}

export interface PoolEvents {
  leak: [LeakEvent];
  leakReturned: [LeakReturnedEvent];
  reclaim: [ReclaimEvent];
  error: [Error];
  /**
   * An acquire found no idle connection and no room to open one (the pool is at `max`), and was
   * queued to wait. Emitted only while someone listens (the mysql2 drop-in's `'enqueue'`).
   */
  enqueue: [];
}


const ACQUIRE_OPTIONS = { timeoutMs: { allowInfinity: true } } as const;
// A hold deadline of Infinity would be a timer firing at once: leave timeoutMs out instead.
const LEASE_SCOPE_OPTIONS = { timeoutMs: { allowInfinity: false }, acquireTimeoutMs: { allowInfinity: true } } as const;

/** Bound on each statement the pool sends on its own behalf (rollback, reset, cancel). */
const CONTROL_TIMEOUT_MS = 2_000;

/**
 * A connection pool whose leases release themselves. Create with `createPool(adapter, options)`.
 * @typeParam C - the driver's connection type (`pg.Client`, a mysql2 promise connection, …).
 */
export class Pool<C extends object = object> extends EventEmitter<PoolEvents> implements LeaseOwner<C>, GaugeSource {
  readonly name: string;
  readonly adapter: Adapter<C>;
  /** @internal */ readonly options: ResolvedPoolOptions;
  /** @internal */ readonly guardConfig: GuardConfig;
  /** @internal */ readonly metrics: MetricsSink;
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
  readonly #max: number;
  #closing: Promise<CloseSummary> | undefined;
  #closed = false;
  #onDrained: (() => void) | undefined;
  /** Leases reclaimed (deadline, GC) after close() began: not "released" in its summary. */
  #reclaimedWhileClosing = 0;

  /** @internal use `createPool` */
  constructor(adapter: Adapter<C>, input?: PoolOptions) {
    super();
    const options = resolvePoolOptions(input);
    validateAdapter(adapter);
    if (options.resetOnRelease && typeof adapter.reset !== 'function') {
      throw new ConfigError([{ field: 'resetOnRelease', problem: `is not supported by the ${adapter.name} adapter (it has no reset())` }]);
    }
    this.options = options;
    this.name = options.name;
    this.adapter = adapter;
    this.logger = options.logger ?? consoleLogger(options.name);
    this.resetOnRelease = options.resetOnRelease;
    this.maxUses = options.maxUses;
    this.#max = options.max;
    if (adapter.maxConnections !== undefined && options.max > adapter.maxConnections) {
      this.#max = adapter.maxConnections;
      this.logger.warn(
        { pool: this.name, max: options.max, adapterMax: adapter.maxConnections },
        `pool "${this.name}": max ${options.max} clamped to ${adapter.maxConnections}: the ${adapter.name} adapter allows only ${adapter.maxConnections} connection(s)`,
      );
    }
    const lifecycle = adapter.lifecycleMethods;
    const methodKinds = new Map<PropertyKey, MethodKind>();
    for (const name of adapter.statementMethods ?? ['query', 'execute']) methodKinds.set(name, 'statement');
    for (const name of lifecycle?.destroy ?? []) methodKinds.set(name, 'destroy');
    for (const name of lifecycle?.release ?? []) methodKinds.set(name, 'release');
    this.guardConfig = { methodKinds, doubleReleaseMessage: lifecycle?.doubleReleaseMessage };
    this.metrics = options.metrics === false ? NOOP_METRICS : createPromMetrics(options.metrics, this);

    this.#factory = createFactory(
      adapter,
      { connectTimeoutMs: options.connectTimeoutMs, maxLifetimeMs: options.maxLifetimeMs, closeTimeoutMs: CONTROL_TIMEOUT_MS, connectFailure: options.connectFailure },
      {
        created: () => this.metrics.connectionCreated(),
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
    const min = Math.min(options.min, this.#max);
    const evictionPeriodMs = Math.min(5_000, Math.max(10, Math.floor(Math.min(options.idleTimeoutMs, options.maxLifetimeMs) / 2)));
    this.#gp = createGenericPool(this.#factory, {
      max: this.#max,
      min,
      // Idle connections above `min` close after idleTimeoutMs (generic-pool's "soft" idle timeout
      // respects min); broken and expired idle connections go at the next run (see evictorFor).
      softIdleTimeoutMillis: options.idleTimeoutMs === Infinity ? -1 : options.idleTimeoutMs,
      idleTimeoutMillis: Infinity,
      evictionRunIntervalMillis: evictionPeriodMs,
      numTestsPerEvictionRun: this.#max,
      autostart: true,
    });
    this.#gp.on('factoryCreateError', () => undefined); // reported through the factory's connectFailed
    this.#gp.on('factoryDestroyError', () => undefined); // closes are bounded and logged by the factory
    this.#waiters = new WaitingRoom(this.#gp, this.#max, {
      timeoutError: (timeoutMs) => new AcquireTimeoutError(this.name, timeoutMs, this.stats()),
      failed: (reason) => this.metrics.acquireFailed(reason),
      returnToPool: (conn) => this.returnToPool(conn),
    });

    const stacksPerSecond = options.leakDetectionMs > 0 ? options.leakStacksPerSecond : 0;
    this.#stacks = stacksPerSecond === Infinity ? 'all' : stacksPerSecond > 0 ? new StackSampler(stacksPerSecond) : undefined;
    this.#leaks = new LeakDetector(this.#active, options.leakDetectionMs, (record) => this.#reportLeak(record), this.#stacks instanceof StackSampler ? this.#stacks : undefined);
    this.#leaks.start();
    this.#dropped = new FinalizationRegistry((record) => this.#onDropped(record));
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
    if (ambient !== undefined) return joinScope(fn, ambient.lease);
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
    const gp = this.#gp;
    return {
      size: this.#factory.liveCount,
      idle: this.#idleCount(),
      active: gp.borrowed,
      pending: this.#waiters.size,
      max: this.#max,
      min: gp.min,
      closed: this.#closed,
    };
  }

  /** Every active lease, oldest first: what is holding the pool. */
  activeLeases(): ActiveLeaseInfo[] {
    const out: ActiveLeaseInfo[] = [];
    for (const record of this.#active) out.push(this.#describe(record));
    return out;
  }

  /**
   * Stop new acquires (`PoolClosedError`), wait for active leases until `timeoutMs`, reclaim the
   * rest, close idle connections. Never hangs; a second call returns the same promise.
   */
  close(options?: { timeoutMs?: number }): Promise<CloseSummary> {
    if (this.#closing !== undefined) return this.#closing;
    const timeoutMs = options?.timeoutMs ?? 10_000;
    const problems: { field: string; problem: string }[] = [];
    check.duration(problems, 'timeoutMs', timeoutMs, { allowZero: true, allowInfinity: false });
    if (problems.length > 0) return Promise.reject(new ConfigError(problems));
    this.#closing = this.#runClose(timeoutMs);
    return this.#closing;
  }

  // ---------------------------------------------------------------- internals

  /**
   * @internal The caller of `entry` (a public method), for leak reports: when leak detection is
   * on, within `leakStacksPerSecond`. Call it first thing, before any await.
   */
  captureAcquireSite(entry: Function): CallSite | undefined {
    const stacks = this.#stacks;
    if (stacks === undefined) return undefined;
    return stacks === 'all' ? captureSite(entry) : stacks.capture(entry);
  }

  /**
   * @internal Acquire a lease; `site` is captured by the public entry point before any await.
   *
   * Not an async function: the common acquire is one `.then` on generic-pool's promise, instead
   * of an async function's promise plus the throwaway promise its await costs while
   * AsyncLocalStorage's promise hooks are on (Node < 22, once any scope has run).
   */
  acquireLease(
    timeoutMs: number,
    signal: AbortSignal | undefined,
    site: CallSite | undefined,
    holdTimeoutMs: number | undefined,
    trackDrop: boolean,
  ): Promise<Lease<C>> {
    try {
      const pending = this.#startAcquire(timeoutMs, signal, site, holdTimeoutMs, trackDrop);
      const conn = pending.connection;
      return conn instanceof PooledConnection ? Promise.resolve(pending.grant(conn)) : conn.then(pending.grant);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The synchronous half of an acquire (throws when the pool is closed, the acquire would
   * deadlock a scope, or the queue is full): the connection (an idle one at once, or one on its
   * way), and `grant`, which turns it into a lease (or, for a connection found broken or expired,
   * closes it and takes another).
   */
  #startAcquire(
    timeoutMs: number,
    signal: AbortSignal | undefined,
    site: CallSite | undefined,
    holdTimeoutMs: number | undefined,
    trackDrop: boolean,
  ): PendingAcquire<C> {
    if (this.#closed) {
      this.metrics.acquireFailed('rejected');
      throw new PoolClosedError(this.name);
    }
    const gp = this.#gp;
    if (gp.available === 0 && gp.spareResourceCapacity <= 0) {
      if (findAmbient(this) !== undefined) {
        this.metrics.acquireFailed('rejected');
        throw new NestedAcquireError(this.name);
      }
      if (this.#waiters.size >= this.options.maxWaiting) {
        this.metrics.acquireFailed('rejected');
        throw new PoolQueueFullError(this.name, this.options.maxWaiting);
      }
      if (this.listenerCount('enqueue') > 0) this.emit('enqueue');
    }
    const startedAt = now();
    const grant = (conn: PooledConnection<C>): Lease<C> | Promise<Lease<C>> => {
      // An idle connection taken at once was acquired when the acquire started.
      const acquiredAt = conn === first ? startedAt : now();
      if (conn.broken || acquiredAt >= conn.expiresAt) {
        // Unusable: close it and take another, within the same acquire deadline.
        this.destroyConnection(conn, conn.broken ? 'broken' : 'lifetime');
        const next = this.#connection(startedAt, timeoutMs, signal);
        return next instanceof PooledConnection ? grant(next) : next.then(grant);
      }
      return this.#leaseFor(conn, startedAt, acquiredAt, site, holdTimeoutMs, trackDrop);
    };
    const connection = this.#connection(startedAt, timeoutMs, signal);
    const first = connection instanceof PooledConnection ? connection : undefined;
    return { connection, grant };
  }

  /**
   * A connection for an acquire: an idle one at once (taken from generic-pool synchronously, no
   * request, no promise), unless others already wait for one; otherwise a place in the waiting room.
   */
  #connection(startedAt: number, timeoutMs: number, signal: AbortSignal | undefined): PooledConnection<C> | Promise<PooledConnection<C>> {
    if (this.#waiters.size === 0 && signal?.aborted !== true) {
      const gp = this.#gp;
      const idle = takeIdle(gp);
      if (idle !== undefined) return idle;
      if (gp.available > 0) return gp.acquire(); // generic-pool's private shape changed: its own way
    }
    return this.#waiters.wait(startedAt, timeoutMs, signal);
  }

  /** Wrap a usable connection in a new lease (throws, giving it back, once the pool is closed). */
  #leaseFor(
    conn: PooledConnection<C>,
    startedAt: number,
    acquiredAt: number,
    site: CallSite | undefined,
    holdTimeoutMs: number | undefined,
    trackDrop: boolean,
  ): Lease<C> {
    if (this.#closed) {
      this.returnToPool(conn);
      this.metrics.acquireFailed('rejected');
      throw new PoolClosedError(this.name);
    }
    this.metrics.acquired((acquiredAt - startedAt) / 1000);
    conn.leased = true;
    this.adapter.onLease?.(conn.raw);
    const record = new LeaseRecord(this, conn, acquiredAt, site);
    this.#active.add(record);
    const deadlineMs = holdTimeoutMs ?? this.options.leaseTimeoutMs;
    if (deadlineMs !== undefined) {
      void record.signal; // create the controller before the timer can fire
      record.deadlineTimer = setTimeout(
        () => void reclaimLease(record, 'leak_reclaimed', new LeaseTimeoutError(record.id, deadlineMs)),
        deadlineMs,
      );
    }
    const lease = new Lease(record);
    if (trackDrop) this.#dropped.register(lease, record, record);
    return lease;
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
    // Not async, and not acquireLease + runAndRelease: the connection's promise feeds the scope's
    // own promise directly, which saves the promise of an async frame and of the acquire's `.then`
    // (see runAndRelease). A synchronous acquire failure rejects the scope.
    return new Promise<R>((resolve, reject) => {
      let pending: PendingAcquire<C>;
      try {
        pending = this.#startAcquire(
          options?.acquireTimeoutMs ?? this.options.acquireTimeoutMs,
          options?.signal,
          site,
          options?.timeoutMs,
          false,
        );
      } catch (err) {
        return reject(mapError === undefined ? err : mapError(err, false));
      }
      const { connection, grant } = pending;
      // The reactions that start a withLease body are bound functions, not arrows: see runScope.
      if (connection instanceof PooledConnection) {
        // Leased now; the body still starts asynchronously, as it does after a wait (one reaction).
        let lease: Lease<C> | Promise<Lease<C>>;
        try {
          lease = grant(connection);
        } catch (err) {
          return reject(mapError === undefined ? err : mapError(err, false));
        }
        if (!(lease instanceof Lease)) {
          // The grant first had to replace a broken connection (rare): only then are these reactions made.
          lease.then(
            (granted) =>
              send === undefined ? runScope(granted, undefined, fn, this, resolve, reject) : runCallbackScope(granted, send, resolve, reject, mapError),
            acquireFailure(reject, mapError),
          );
        } else if (send === undefined) RESOLVED.then((runScope<C, R>).bind(undefined, lease, undefined, fn, this, resolve, reject));
        else RESOLVED.then(() => runCallbackScope(lease, send, resolve, reject, mapError));
        return;
      }
      const failAcquire = acquireFailure(reject, mapError);
      if (send === undefined) {
        const run = (grantAndRunScope<C, R>).bind(new WaitingScope(grant, fn as (conn: C, lease: Lease<C>) => R | PromiseLike<R>, this, resolve, reject, failAcquire));
        connection.then(run, failAcquire);
        return;
      }
      connection.then((conn) => {
        let lease: Lease<C> | Promise<Lease<C>>;
        try {
          lease = grant(conn);
        } catch (err) {
          return failAcquire(err);
        }
        if (lease instanceof Lease) runCallbackScope(lease, send, resolve, reject, mapError);
        else lease.then((granted) => runCallbackScope(granted, send, resolve, reject, mapError), failAcquire);
      }, failAcquire);
    });
  }

  /**
   * @internal The scope protocol: run `body`, then release; the body's error wins and cleanup
   * errors are attached to it; if the pool revokes the lease, the caller gets the revoke reason
   * at once even if the body ignores it.
   *
   * Not an async function: one explicit promise per scope, settled by `runScope`/`endScope`,
   * replaces the async function's promise, the revocation race's own promise and the two awaits
   * (each of which costs a throwaway promise while AsyncLocalStorage's promise hooks are on, as
   * they are on Node < 22 once any scope has run).
   */
  runAndRelease<R>(leaseOrAcquire: Lease<C> | Promise<Lease<C>>, body: (lease: Lease<C>) => R | PromiseLike<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (leaseOrAcquire instanceof Lease) runScope(leaseOrAcquire, body, undefined, undefined, resolve, reject);
      else leaseOrAcquire.then((lease) => runScope(lease, body, undefined, undefined, resolve, reject), reject);
    });
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
    if (this.adapter.isFatal(err)) record.connection.markBroken(err);
  }

  /** @internal */
  forget(record: LeaseRecord<C>, outcome: 'released' | 'reclaimed'): void {
    this.#active.delete(record);
    record.connection.leased = false;
    if (outcome === 'reclaimed' && this.#closed) this.#reclaimedWhileClosing++;
    if (record.leakReported && outcome === 'released') {
      const heldMs = Math.round(now() - record.acquiredAt);
      this.logger.warn({ pool: this.name, leaseId: record.id, heldMs }, `pool "${this.name}": previously reported leaked lease #${record.id} was returned after ${heldMs} ms`);
      this.emit('leakReturned', { id: record.id, heldMs });
    }
    if (this.#active.size === 0) this.#onDrained?.();
  }

  /** @internal A healthy connection goes to the longest-waiting caller, else back to generic-pool. */
  returnToPool(conn: PooledConnection<C>): void {
    if (!this.#gp.isBorrowedResource(conn)) return;
    // Called for a hand-off too: adapters pair onLease/onIdle (the drop-ins' release events).
    this.adapter.onIdle?.(conn.raw);
    if (this.#waiters.handOff(conn)) return;
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
    for (let i = 0; i < errors.length; i++) this.metrics.recovery('cleanup_error');
    this.logger.debug?.({ pool: this.name, leaseId: record.id, errors }, 'deferred cleanup(s) failed');
  }

  /** @internal */
  reportReclaim(record: LeaseRecord<C>, kind: RecoveryKind, reason: Error): void {
    this.metrics.recovery(kind);
    const info = this.#describe(record);
    this.logger.warn(
      { pool: this.name, leaseId: record.id, kind, ageMs: info.ageMs, inTransaction: info.inTransaction },
      `pool "${this.name}": lease #${record.id} reclaimed (${kind}) after ${info.ageMs} ms: ${reason.message}` +
        (info.stack !== undefined ? `\nacquired at:\n${info.stack}` : ''),
    );
    if (this.listenerCount('reclaim') > 0) this.emit('reclaim', { ...info, kind, reason });
  }

  /** @internal GaugeSource */
  gaugeSnapshot(): ReturnType<GaugeSource['gaugeSnapshot']> {
    const gp = this.#gp;
    const first = this.#active.first;
    const oldest = first === undefined ? 0 : (now() - first.acquiredAt) / 1000;
    return {
      idle: this.#idleCount(),
      active: gp.borrowed,
      pendingCreate: Math.max(0, gp.size - this.#factory.liveCount),
      max: this.#max,
      pending: this.#waiters.size,
      oldestLeaseSeconds: oldest,
    };
  }

  /** generic-pool's clear() destroys idle resources but leaves them in its available list. */
  #idleCount(): number {
    return Math.max(0, Math.min(this.#gp.available, this.#factory.liveCount - this.#gp.borrowed));
  }

  #describe(record: LeaseRecord<C>): ActiveLeaseInfo {
    const status = record.txDepth > 0 ? 'in_tx' : record.state !== 'released' ? (this.adapter.txStatus?.(record.connection.raw) ?? 'idle') : 'idle'; // revoked: still this lease's connection until destroyed
    return {
      id: record.id,
      ageMs: Math.round(now() - record.acquiredAt),
      inTransaction: status === 'in_tx' || status === 'failed',
      stack: formatSite(record.site),
    };
  }

  #failWaiters(error: ConnectError, startedAt: number): void {
    // The database is unreachable: every caller waiting now gets the real error at once rather
    // than a timeout later (the next acquire tries again). With connectFailure 'one', only the
    // caller the attempt was made for.
    if (this.options.connectFailure === 'one') this.#waiters.failOldest(error, 'error', startedAt);
    else this.#waiters.failAll(error, 'error');
    this.logger.warn({ pool: this.name, err: error }, `pool "${this.name}": ${error.message}`);
  }

  #onConnectionError(conn: PooledConnection<C>, err: unknown): void {
    const first = !conn.broken;
    conn.markBroken(err);
    if (!first) return;
    // An idle connection that broke is closed now, not at the next eviction run.
    if (!conn.leased) evictNow(this.#gp as GenericPool<unknown>);
    const error = err instanceof Error ? err : new Error(String(err));
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else this.logger.error({ pool: this.name, err: error }, `pool "${this.name}": connection #${conn.id} failed${conn.leased ? ' while leased' : ' while idle'}: ${error.message}`);
  }

  #reportLeak(record: LeaseRecord<C>): void {
    this.metrics.leakDetected();
    const info = this.#describe(record);
    this.logger.warn(
      { pool: this.name, leaseId: info.id, ageMs: info.ageMs, inTransaction: info.inTransaction },
      `pool "${this.name}": lease #${info.id} held for ${info.ageMs} ms (leakDetectionMs=${this.options.leakDetectionMs}), possible leak; acquired at:\n${info.stack ?? `    (acquire stack not recorded: at most leakStacksPerSecond=${this.options.leakStacksPerSecond} acquires per second record one)`}`,
    );
    if (this.listenerCount('leak') > 0) this.emit('leak', info);
  }

  #onDropped(record: LeaseRecord<C>): void {
    if (record.state !== 'active') return;
    void reclaimLease(record, 'gc_reclaimed', new Error(`lease #${record.id} was garbage-collected without release()`));
  }

  async #runClose(timeoutMs: number): Promise<CloseSummary> {
    this.#closed = true;
    const deadline = now() + timeoutMs;
    this.#leaks.stop();
    this.#factory.stop();
    const closedError = new PoolClosedError(this.name);
    this.#waiters.stop();
    this.#waiters.failAll(closedError, 'rejected');
    rejectAllRequests(this.#gp as GenericPool<unknown>, closedError);

    const activeAtStart = this.#active.size;
    if (activeAtStart > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - now()));
        this.#onDrained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#onDrained = undefined;
    }
    const leftovers = [...this.#active];
    const reclaimedDuringWait = this.#reclaimedWhileClosing;
    // Past the deadline one grace period (CONTROL_TIMEOUT_MS) covers reclaiming what is left and
    // closing idle connections, so close() resolves by timeoutMs + CONTROL_TIMEOUT_MS even when
    // every socket is blackholed: half of it for cancel + rollback, the rest for the closes.
    const graceEnd = Math.max(now(), deadline) + CONTROL_TIMEOUT_MS;
    // One error per lease: the scope protocol attaches cleanup errors to the error its caller gets.
    await Promise.all(
      leftovers.map((record) => reclaimLease(record, 'shutdown_reclaimed', new PoolClosedError(this.name), CONTROL_TIMEOUT_MS / 2)),
    );

    const gp = this.#gp;
    const closeIdle = gp.drain().then(() => gp.clear());
    await withTimeout(closeIdle, Math.max(0, graceEnd - now())).catch((err: unknown) =>
      this.logger.warn({ pool: this.name, err }, `pool "${this.name}": closing idle connections did not finish in time`),
    );
    if (this.adapter.dispose !== undefined) {
      await withTimeout(this.adapter.dispose(), Math.max(0, deadline - now()) + CONTROL_TIMEOUT_MS).catch((err: unknown) =>
        this.logger.warn({ pool: this.name, err }, `pool "${this.name}": disposing the ${this.adapter.name} adapter failed`),
      );
    }
    this.metrics.detach();
    return { released: activeAtStart - leftovers.length - reclaimedDuringWait, reclaimed: leftovers.length + reclaimedDuringWait };
  }
}

/** An acquire under way: see `Pool.#startAcquire`. */
interface PendingAcquire<C extends object> {
  readonly connection: PooledConnection<C> | Promise<PooledConnection<C>>;
  readonly grant: (conn: PooledConnection<C>) => Lease<C> | Promise<Lease<C>>;
}

/** Join the ambient lease: same connection, no release at the end (the outer scope owns it). */
async function joinScope<C extends object, R>(fn: (conn: C, lease: Lease<C>) => R | PromiseLike<R>, lease: Lease<C>): Promise<R> {
  return fn(lease.conn, lease);
}

/**
 * Run a scope's body on `lease` and settle the scope's promise: with the body's outcome, or with
 * the revoke reason as soon as the pool revokes the lease (deadline, close(), reclaim) even if the
 * body ignores it; then release (see `endScope`). Never throws: every path ends in `endScope`.
 *
 * The body is `body(lease)` (withTx brings its own), or, for withLease, `fn(conn, lease)` run in
 * the ambient scope of `pool`, called from here without a closure in between: every frame between
 * the event loop and a driver call costs drivers that capture a stack per statement (mysql2's
 * promise API does, by default) and the sampled acquire stacks of leak detection. For the same
 * reason the reactions that start a withLease scope are this function (or `grantAndRunScope`)
 * bound to their arguments, not an arrow that calls it: a bound function adds no frame.
 */
function runScope<C extends object, R>(
  lease: Lease<C>,
  body: ((lease: Lease<C>) => R | PromiseLike<R>) | undefined,
  fn: ((conn: C, lease: Lease<C>) => R | PromiseLike<R>) | undefined,
  pool: object | undefined,
  resolve: (value: R) => void,
  reject: (error: unknown) => void,
): void {
  const record = lease.record;
  let value: R | PromiseLike<R>;
  if (body !== undefined) {
    try {
      value = body(lease);
    } catch (error) {
      return endScope(record, true, error, resolve, reject);
    }
  } else {
    const previous = enterScope(pool as object, lease as Lease<object>, undefined);
    try {
      value = (fn as (conn: C, lease: Lease<C>) => R | PromiseLike<R>)(lease.conn, lease);
    } catch (error) {
      return endScope(record, true, error, resolve, reject);
    } finally {
      leaveScope(previous);
    }
  }
  watchScope(record, value, resolve, reject);
}

/** What a withLease scope that waits for its connection needs once it has one (see `grantAndRunScope`). */
class WaitingScope<C extends object, R> {
  constructor(
    readonly grant: (conn: PooledConnection<C>) => Lease<C> | Promise<Lease<C>>,
    readonly fn: (conn: C, lease: Lease<C>) => R | PromiseLike<R>,
    readonly pool: object,
    readonly resolve: (value: R) => void,
    readonly reject: (error: unknown) => void,
    readonly failAcquire: (error: unknown) => void,
  ) {}
}

/**
 * A withLease scope that waited for its connection: lease it (`grant`), then run `fn` as
 * `runScope` does. The body is called here rather than through `runScope`, so that one frame of
 * leasepool's, not two, lies under it (see `runScope`): with the bound reactions, a capture of
 * mysql2's `trace` measured 38,700 instructions instead of 46,700-47,900 (callgrind, 16 callers).
 * The scope comes as `this` (bound), not as six bound arguments: the less state this frame holds
 * when it calls the body, the less a stack capture decodes (with the guard's inlined statement
 * method, 36,400 instructions per capture against MariaDB instead of 38,200-38,900).
 */
function grantAndRunScope<C extends object, R>(this: WaitingScope<C, R>, conn: PooledConnection<C>): void {
  let lease: Lease<C> | Promise<Lease<C>>;
  try {
    lease = this.grant(conn);
  } catch (err) {
    return this.failAcquire(err);
  }
  if (!(lease instanceof Lease)) {
    lease.then((granted) => runScope(granted, undefined, this.fn, this.pool, this.resolve, this.reject), this.failAcquire);
    return;
  }
  const fn = this.fn;
  const previous = enterScope(this.pool, lease as Lease<object>, undefined);
  let value: R | PromiseLike<R>;
  try {
    value = fn(lease.conn, lease);
  } catch (error) {
    return endScope(lease.record, true, error, this.resolve, this.reject);
  } finally {
    leaveScope(previous);
  }
  watchScope(lease.record, value, this.resolve, this.reject);
}

/** The rest of a scope once its body has returned `value`: settle with it, or race it with a revoke. */
function watchScope<C extends object, R>(
  record: LeaseRecord<C>,
  value: R | PromiseLike<R>,
  resolve: (value: R) => void,
  reject: (error: unknown) => void,
): void {
  if (!isThenable(value)) return endScope(record, false, value, resolve, reject);
  if (record.state === 'revoked') return endScope(record, true, record.revokedBy, resolve, reject);
  // Any lease can be revoked, not only one with a deadline: always race. A plain callback on the
  // record, not an AbortSignal listener (those cost microseconds).
  let settled = false;
  record.onRevoke = (reason) => {
    if (settled) return;
    settled = true;
    // reclaimLease calls this before it has set `record.releasing` to its reclaim: end the scope
    // once it has, so that the caller hears of the revoke only after the reclaim is done.
    queueMicrotask(() => endScope(record, true, reason, resolve, reject));
  };
  try {
    value.then(
      (v) => {
        record.onRevoke = undefined;
        if (settled) return;
        settled = true;
        endScope(record, false, v, resolve, reject);
      },
      (err: unknown) => {
        record.onRevoke = undefined;
        if (settled) return;
        settled = true;
        endScope(record, true, err, resolve, reject);
      },
    );
  } catch (err) {
    // A thenable whose then() throws: the body failed.
    record.onRevoke = undefined;
    if (settled) return;
    settled = true;
    endScope(record, true, err, resolve, reject);
  }
}

/**
 * `runScope` for a body that reports through a callback (`Pool.scopedCallback`): the same race
 * with a revoke, the same `endScope`, without the body's promise and the reactions on it. The
 * body's error and the revoke reason go through `mapError` first (such a body defers no cleanup,
 * so there are no cleanup errors to attach to either).
 */
function runCallbackScope<C extends object, R>(
  lease: Lease<C>,
  send: (lease: Lease<C>, done: (error: unknown, value?: R) => void) => void,
  resolve: (value: R) => void,
  reject: (error: unknown) => void,
  mapError: ((error: unknown, started: boolean) => unknown) | undefined,
): void {
  const record = lease.record;
  let settled = false;
  // Installed before the body runs: a revoke it causes synchronously is seen too.
  record.onRevoke = (reason) => {
    if (settled) return;
    settled = true;
    const error = mapError === undefined ? reason : mapError(reason, true);
    queueMicrotask(() => endScope(record, true, error, resolve, reject));
  };
  const done = (error: unknown, value?: R): void => {
    if (settled) return;
    settled = true;
    record.onRevoke = undefined;
    if (error === undefined || error === null) endScope(record, false, value, resolve, reject);
    else endScope(record, true, mapError === undefined ? error : mapError(error, true), resolve, reject);
  };
  try {
    send(lease, done);
  } catch (error) {
    done(error ?? new Error(`the scope's body threw ${String(error)}`));
  }
}

/** What a failed acquire rejects a scope with, as a reaction: `mapError(error, false)` when given. */
function acquireFailure(reject: (error: unknown) => void, mapError: ((error: unknown, started: boolean) => unknown) | undefined): (error: unknown) => void {
  return mapError === undefined ? reject : (error) => reject(mapError(error, false));
}

/**
 * Release the scope's lease and settle: the body's error wins (cleanup errors attached to it),
 * else cleanup errors reject as `CleanupError`, else the body's value. A release with nothing to
 * wait for settles at once.
 */
function endScope<C extends object, R>(
  record: LeaseRecord<C>,
  failed: boolean,
  outcome: unknown,
  resolve: (value: R) => void,
  reject: (error: unknown) => void,
): void {
  const releasing = releaseLease(record);
  if (releasing === RELEASED_CLEAN) {
    if (failed) reject(outcome);
    else resolve(outcome as R);
    return;
  }
  releasing.then((cleanupErrors) => {
    try {
      if (failed) {
        attachSuppressed(outcome, cleanupErrors);
        reject(outcome);
      } else if (cleanupErrors.length > 0) reject(new CleanupError(cleanupErrors));
      else resolve(outcome as R);
    } catch (err) {
      reject(err);
    }
  }, reject);
}

function isThenable<R>(value: R | PromiseLike<R>): value is PromiseLike<R> {
  return value !== null && typeof value === 'object' && typeof (value as PromiseLike<R>).then === 'function';
}

const ignore = (): void => undefined;
const RESOLVED = Promise.resolve();

function validateAdapter(adapter: unknown): asserts adapter is Adapter<object> {
  const a = adapter as Partial<Adapter<object>> | null;
  const missing: string[] = [];
  if (a === null || typeof a !== 'object') throw new ConfigError([{ field: 'adapter', problem: 'must be an adapter object (pgAdapter(), mysqlAdapter(), pgliteAdapter())' }]);
  for (const key of ['connect', 'close', 'validate', 'exec', 'isFatal', 'isRetryable'] as const) {
    if (typeof a[key] !== 'function') missing.push(key);
  }
  if (a.sql === undefined) missing.push('sql');
  if (missing.length > 0) throw new ConfigError([{ field: 'adapter', problem: `is missing ${missing.join(', ')}` }]);
}

/** Create a pool. Invalid options throw one `ConfigError` naming every bad field. */
export function createPool<C extends object>(adapter: Adapter<C>, options?: PoolOptions): Pool<C> {
  return new Pool(adapter, options);
}
