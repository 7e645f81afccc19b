/**
 * The places we reach into generic-pool (pinned at 3.9.0): building its Pool with our evictor,
 * taking an idle connection and giving it back without a request or a promise (the hot path),
 * withdrawing a request whose caller gave up, failing every request at shutdown, and running
 * the evictor on demand.
 * generic-pool has no public way to cancel an acquire; without this an abandoned request stays
 * queued and keeps generic-pool creating connections for nobody. If the private shape ever
 * changes, these functions do nothing and the pool falls back to handing an abandoned
 * connection straight back (and to the scheduled eviction run).
 */
import * as genericPool from 'generic-pool';
import type { Factory, Options, Pool as GenericPool } from 'generic-pool';
import type { PooledConnection } from './connections';
import { now } from './time';

/** A request queued in generic-pool (private shape). */
export interface ResourceRequest {
  readonly promise: Promise<unknown>;
  reject(reason: unknown): void;
}
interface WaitingQueue {
  readonly tail: ResourceRequest | undefined;
  dequeue(): ResourceRequest | undefined;
}

function queueOf(gp: GenericPool<unknown>): WaitingQueue | undefined {
  const queue = (gp as unknown as { _waitingClientsQueue?: WaitingQueue })._waitingClientsQueue;
  return queue !== undefined && typeof queue.dequeue === 'function' ? queue : undefined;
}

/** The queued request behind `promise`, if it is still the newest one (call right after acquire). */
export function newestRequest(gp: GenericPool<unknown>, promise: Promise<unknown>): ResourceRequest | undefined {
  const tail = queueOf(gp)?.tail;
  return tail !== undefined && tail.promise === promise ? tail : undefined;
}

/** Withdraw a still-pending request: generic-pool removes queue entries rejected as `TimeoutError`. */
export function withdrawRequest(request: ResourceRequest | undefined): void {
  if (request === undefined) return;
  const withdrawn = new Error('acquire withdrawn by leasepool');
  withdrawn.name = 'TimeoutError';
  request.reject(withdrawn);
}

interface PooledResource<T> {
  readonly obj: T;
  /** generic-pool's PooledResourceStateEnum value. */
  state: string;
}
/** What generic-pool reads of a loan: `resolve()` and `pooledResource` at release, `promise` in drain(). */
interface Loan<T> {
  readonly pooledResource: PooledResource<T>;
  resolve(): void;
}
interface Internals<T> {
  readonly _availableObjects?: { readonly length: number; shift(): PooledResource<T> | undefined };
  readonly _waitingClientsQueue?: { readonly length: number };
  readonly _resourceLoans?: Map<T, Loan<T>>;
  readonly _draining?: boolean;
  readonly _config?: { readonly testOnBorrow?: boolean };
  _addPooledResourceToAvailableObjects(pooled: PooledResource<T>): void;
  _dispense(): void;
}

/** generic-pool's Pool has the two methods a return to the idle list needs (checked once, not per lease). */
const CAN_RETURN_IDLE = ((): boolean => {
  const proto = (genericPool as unknown as { Pool?: { prototype?: Record<string, unknown> } }).Pool?.prototype;
  return typeof proto?.['_addPooledResourceToAvailableObjects'] === 'function' && typeof proto['_dispense'] === 'function';
})();

/**
 * The loan of a connection taken by `takeIdle`: generic-pool's ResourceLoan minus the promise it
 * makes for every loan (only `drain()` ever reads it, at shutdown): made when asked for.
 */
class IdleLoan<T> implements Loan<T> {
  #returned = false;
  #promise: Promise<void> | undefined;
  #settle: (() => void) | undefined;

  constructor(readonly pooledResource: PooledResource<T>) {}

  get promise(): Promise<void> {
    if (this.#promise === undefined) {
      this.#promise = this.#returned ? Promise.resolve() : new Promise<void>((resolve) => (this.#settle = resolve));
    }
    return this.#promise;
  }

  resolve(): void {
    this.#returned = true;
    this.#settle?.();
  }

  reject(): void {
    // As generic-pool's ResourceLoan: a loan only ever ends by being returned.
  }
}

/**
 * Borrow an idle connection at once, exactly as generic-pool's own dispatch does (a loan, the
 * resource marked allocated) but without a request: no ResourceRequest with its promise, no queue
 * node, nothing to wait on. `undefined` when none is idle, when requests are queued (they come
 * first), when generic-pool is draining, or when its private shape is not the one we know — then
 * the caller uses `gp.acquire()`.
 */
export function takeIdle<T>(gp: GenericPool<T>): T | undefined {
  const internals = gp as unknown as Internals<T>;
  const available = internals._availableObjects;
  const loans = internals._resourceLoans;
  if (
    available === undefined ||
    available.length === 0 ||
    loans === undefined ||
    !CAN_RETURN_IDLE ||
    internals._draining !== false ||
    internals._waitingClientsQueue?.length !== 0 ||
    internals._config?.testOnBorrow !== false
  ) {
    return undefined;
  }
  const pooled = available.shift();
  if (pooled === undefined) return undefined;
  loans.set(pooled.obj, new IdleLoan(pooled));
  // What `pooled.allocate()` does, minus its `Date.now()` for `lastBorrowTime`, which generic-pool
  // never reads (only `lastIdleTime`, for idle eviction): a clock read is a visible share of a lease.
  pooled.state = 'ALLOCATED';
  return pooled.obj;
}

/**
 * Give a borrowed connection back to the idle list as generic-pool's `release()` does, without
 * the resolved promise it returns on every call. False when `resource` is not on loan or the
 * private shape is not the one we know: then the caller uses `gp.release()`.
 */
export function returnIdle<T>(gp: GenericPool<T>, resource: T): boolean {
  const internals = gp as unknown as Internals<T>;
  const loans = internals._resourceLoans;
  if (loans === undefined || !CAN_RETURN_IDLE) return false;
  const loan = loans.get(resource);
  if (loan === undefined) return false;
  loans.delete(resource);
  loan.resolve();
  // generic-pool's release() calls `deallocate()` first, which stamps `lastReturnTime` (never read)
  // and sets the state that `_addPooledResourceToAvailableObjects` sets again with `idle()`.
  internals._addPooledResourceToAvailableObjects(loan.pooledResource);
  internals._dispense();
  return true;
}

/** Reject every queued request (shutdown). */
export function rejectAllRequests(gp: GenericPool<unknown>, reason: Error): void {
  const queue = queueOf(gp);
  if (queue === undefined) return;
  for (let request = queue.dequeue(); request !== undefined; request = queue.dequeue()) request.reject(reason);
}

/**
 * Run the evictor now (it closes idle connections that broke, see `evictorFor` in pool.ts),
 * instead of waiting for the next scheduled run.
 */
export function evictNow(gp: GenericPool<unknown>): void {
  const evict = (gp as unknown as { _evict?: () => void })._evict;
  if (typeof evict === 'function') evict.call(gp);
}

/**
 * generic-pool's default evictor closes idle connections past the soft idle timeout (keeping
 * `min`); ours also closes idle connections that broke or outlived `maxLifetimeMs`.
 */
interface Evictor {
  evict(config: unknown, resource: { obj: PooledConnection }, available: number): boolean;
}
interface GenericPoolModule {
  Pool: new (evictor: new () => Evictor, deque: unknown, queue: unknown, factory: unknown, options: Options) => GenericPool<never>;
  DefaultEvictor: new () => Evictor;
  Deque: unknown;
  PriorityQueue: unknown;
}

function evictorFor(DefaultEvictor: new () => Evictor): new () => Evictor {
  const idle = new DefaultEvictor();
  return class Evictor {
    evict(config: unknown, resource: { obj: PooledConnection }, available: number): boolean {
      const conn = resource.obj;
      // Already given a reason while idle (Pool.retireIdle): close it now.
      if (conn.closeReason !== undefined) return true;
      if (conn.broken) conn.closeReason = 'broken';
      else if (now() >= conn.expiresAt) conn.closeReason = 'lifetime';
      else if (idle.evict(config, resource, available)) conn.closeReason = 'idle';
      else return false;
      return true;
    }
  };
}

/** generic-pool's Pool with our evictor (createPool offers no way to pass one). */
export function createGenericPool<C extends object>(factory: Factory<PooledConnection<C>>, options: Options): GenericPool<PooledConnection<C>> {
  const gp = genericPool as unknown as GenericPoolModule;
  return new gp.Pool(evictorFor(gp.DefaultEvictor), gp.Deque, gp.PriorityQueue, factory, options);
}

/**
 * The generic-pool of a leasepool pool. Idle connections above `min` close after `idleTimeoutMs`
 * (generic-pool's "soft" idle timeout respects min); broken and expired idle connections go at the
 * next eviction run (see evictorFor). The run period is short: an idle connection is closed soon
 * after its idle timeout, and with it the last thing that kept a pool nobody closed from letting
 * the process exit.
 */
export function createConnectionPool<C extends object>(
  factory: Factory<PooledConnection<C>>,
  options: { readonly max: number; readonly min: number; readonly idleTimeoutMs: number; readonly maxLifetimeMs: number },
): GenericPool<PooledConnection<C>> {
  const evictionPeriodMs = Math.min(1_000, Math.max(10, Math.floor(Math.min(options.idleTimeoutMs, options.maxLifetimeMs) / 2)));
  const gp = createGenericPool(factory, {
    max: options.max,
    min: options.min,
    softIdleTimeoutMillis: options.idleTimeoutMs === Infinity ? -1 : options.idleTimeoutMs,
    idleTimeoutMillis: Infinity,
    evictionRunIntervalMillis: evictionPeriodMs,
    numTestsPerEvictionRun: options.max,
    autostart: true,
  });
  gp.on('factoryCreateError', () => undefined); // reported through the factory's connectFailed
  gp.on('factoryDestroyError', () => undefined); // closes are bounded and logged by the factory
  return gp;
}

/**
 * `pool.stats()` from generic-pool's counts and the factory's live count. generic-pool's clear()
 * destroys idle resources but leaves them in its available list: idle is capped by what is live.
 */
export function poolStats<C extends object>(
  gp: GenericPool<PooledConnection<C>>,
  factory: { readonly liveCount: number },
  waiters: { readonly size: number },
  max: number,
  closed: boolean,
): { size: number; idle: number; active: number; pending: number; max: number; min: number; closed: boolean } {
  return {
    size: factory.liveCount,
    idle: Math.max(0, Math.min(gp.available, factory.liveCount - gp.borrowed)),
    active: gp.borrowed,
    pending: waiters.size,
    max,
    min: gp.min,
    closed,
  };
}
