/**
 * Acquiring a lease: an idle connection at once when there is one (taken from generic-pool
 * synchronously, no promise), else a place in the waiting room; a connection found broken or past
 * its lifetime is closed and another taken within the same deadline; the nested-acquire deadlock
 * and a full queue fail at once. The usable connection becomes a `LeaseRecord` with its deadline.
 */
import type { EventEmitter } from 'node:events';
import type { Pool as GenericPool } from 'generic-pool';
import type { Adapter } from './adapter';
import { PooledConnection } from './connections';
import { findAmbient } from './context';
import { LeaseTimeoutError, NestedAcquireError, PoolClosedError, PoolQueueFullError } from './errors';
import { takeIdle } from './generic-pool-internals';
import { Lease, type ActiveLeases } from './lease';
import { LeaseRecord, type CallSite, type LeaseOwner } from './lease-record';
import type { PoolEvents } from './pool-types';
import { reclaimLease } from './release';
import type { PendingAcquire } from './scope';
import type { PoolTracer } from './telemetry/types';
import { now } from './time';
import type { WaitingRoom } from './waiters';

/** The pool as its acquires see it: the owner of the leases they make. */
export interface AcquireHost<C extends object> extends LeaseOwner<C>, Pick<EventEmitter<PoolEvents>, 'emit' | 'listenerCount'> {
  readonly name: string;
  readonly adapter: Adapter<C>;
  readonly options: { readonly maxWaiting: number; readonly leaseTimeoutMs: number | undefined; readonly allowExitOnIdle: boolean };
  /** True once close() began. */
  readonly closed: boolean;
  readonly tracer: PoolTracer | undefined;
}

export class Acquirer<C extends object> {
  constructor(
    private readonly host: AcquireHost<C>,
    private readonly gp: GenericPool<PooledConnection<C>>,
    private readonly waiters: WaitingRoom<C>,
    private readonly active: ActiveLeases<C>,
    /** Finds lease handles dropped without release (see Pool). */
    private readonly dropped: FinalizationRegistry<LeaseRecord<C>>,
  ) {}

  /** Acquire a lease (see `start`); synchronous failures reject. */
  acquire(timeoutMs: number, signal: AbortSignal | undefined, site: CallSite | undefined, holdTimeoutMs: number | undefined, trackDrop: boolean): Promise<Lease<C>> {
    try {
      const pending = this.start(timeoutMs, signal, site, holdTimeoutMs, trackDrop);
      const conn = pending.connection;
      // Not an async function: the common acquire is one `.then` on generic-pool's promise.
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
  start(
    timeoutMs: number,
    signal: AbortSignal | undefined,
    site: CallSite | undefined,
    holdTimeoutMs: number | undefined,
    trackDrop: boolean,
  ): PendingAcquire<C> {
    if (this.host.closed) throw this.#rejected(new PoolClosedError(this.host.name));
    const gp = this.gp;
    if (gp.available === 0 && gp.spareResourceCapacity <= 0) {
      if (findAmbient(this.host)?.lease.state === 'active') throw this.#rejected(new NestedAcquireError(this.host.name));
      if (this.waiters.size >= this.host.options.maxWaiting) throw this.#rejected(new PoolQueueFullError(this.host.name, this.host.options.maxWaiting));
      if (this.host.listenerCount('enqueue') > 0) this.host.emit('enqueue');
    }
    const startedAt = now();
    const grant = (conn: PooledConnection<C>): Lease<C> | Promise<Lease<C>> => {
      // An idle connection taken at once was acquired when the acquire started.
      const acquiredAt = conn === first ? startedAt : now();
      if (conn.broken || acquiredAt >= conn.expiresAt) {
        // Unusable: close it and take another, within the same acquire deadline.
        this.host.destroyConnection(conn, conn.broken ? 'broken' : 'lifetime');
        const next = this.#connection(startedAt, timeoutMs, signal);
        return next instanceof PooledConnection ? grant(next) : next.then(grant);
      }
      return this.#leaseFor(conn, startedAt, acquiredAt, site, holdTimeoutMs, trackDrop);
    };
    const connection = this.#connection(startedAt, timeoutMs, signal);
    const first = connection instanceof PooledConnection ? connection : undefined;
    const tracer = this.host.tracer;
    if (tracer !== undefined) {
      if (first === undefined) tracer.acquireWaiting(connection as Promise<unknown>, this.waiters.size, signal, startedAt);
      else tracer.idleAcquire?.();
    }
    return { connection, grant };
  }

  /** An acquire refused at once (closed pool, nested-acquire deadlock, full queue): counted and traced. */
  #rejected(error: Error): Error {
    this.host.metrics.acquireFailed('rejected');
    this.host.tracer?.acquireRejected(error);
    return error;
  }

  /**
   * A connection for an acquire: an idle one at once (taken from generic-pool synchronously, no
   * request, no promise), unless others already wait for one; otherwise a place in the waiting room.
   */
  #connection(startedAt: number, timeoutMs: number, signal: AbortSignal | undefined): PooledConnection<C> | Promise<PooledConnection<C>> {
    if (this.waiters.size === 0 && signal?.aborted !== true) {
      const gp = this.gp;
      const idle = takeIdle(gp);
      if (idle !== undefined) return idle;
      if (gp.available > 0) return gp.acquire(); // generic-pool's private shape changed: its own way
    }
    return this.waiters.wait(startedAt, timeoutMs, signal);
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
    if (this.host.closed) {
      this.host.returnToPool(conn);
      this.host.metrics.acquireFailed('rejected');
      throw new PoolClosedError(this.host.name);
    }
    this.host.metrics.acquired((acquiredAt - startedAt) / 1000);
    conn.leased = true;
    if (this.host.options.allowExitOnIdle) this.host.adapter.refConnection?.(conn.raw, true);
    this.host.adapter.onLease?.(conn.raw);
    const record = new LeaseRecord(this.host, conn, acquiredAt, site);
    this.active.add(record);
    const deadlineMs = holdTimeoutMs ?? this.host.options.leaseTimeoutMs;
    if (deadlineMs !== undefined) {
      record.deadlineAt = acquiredAt + deadlineMs;
      void record.signal; // create the controller before the timer can fire
      record.deadlineTimer = setTimeout(
        // A deadline is a policy the caller or the pool set; it counts as a leak only once the leak
        // detector had reported this lease before the deadline came.
        () => void reclaimLease(record, record.leakReported ? 'leak_reclaimed' : 'deadline', new LeaseTimeoutError(record.id, deadlineMs)),
        deadlineMs,
      );
    }
    const lease = new Lease(record);
    if (trackDrop) this.dropped.register(lease, record, record);
    return lease;
  }
}
