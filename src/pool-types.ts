/**
 * The public shapes of the pool's API: call options, `stats()`, `close()`'s summary, events.
 */
import type { ActiveLeaseInfo } from './lease';
import type { RecoveryKind } from './metrics';

/** Options of `pool.acquire()`. */
export interface AcquireOptions {
  /** Abort the wait; the promise rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Longest wait for this acquire, overriding the pool's `acquireTimeoutMs`. */
  timeoutMs?: number | undefined;
}

/** Options of `pool.withLease()`. */
export interface LeaseScopeOptions {
  /** Abort the wait for a connection. */
  signal?: AbortSignal | undefined;
  /** Deadline for holding the lease: at expiry it is revoked and the call rejects with `LeaseTimeoutError`. */
  timeoutMs?: number | undefined;
  /** Longest wait for a connection, overriding the pool's `acquireTimeoutMs`. */
  acquireTimeoutMs?: number | undefined;
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

/**
 * Payload of the `'reclaim'` event: the pool took a lease back that its holder did not give back
 * (`leak_reclaimed`, `gc_reclaimed`, `shutdown_reclaimed`). A lease revoked at a deadline before any
 * leak report is a `'deadline'` event instead.
 */
export interface ReclaimEvent extends ActiveLeaseInfo {
  readonly kind: RecoveryKind;
  readonly reason: Error;
}

/**
 * Payload of the `'deadline'` event: a lease (or the transaction on it) was revoked at the deadline
 * its caller set (`timeoutMs`) or the pool's `leaseTimeoutMs`, before the leak detector reported it.
 * Counted as `leasepool_recoveries_total{kind="deadline"}`; no acquire stack (it is not a leak).
 */
export interface DeadlineEvent {
  readonly id: number;
  readonly ageMs: number;
  readonly inTransaction: boolean;
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number | undefined;
  /** The `LeaseTimeoutError` the body and the caller see. */
  readonly reason: Error;
}

export interface PoolEvents {
  leak: [LeakEvent];
  leakReturned: [LeakReturnedEvent];
  reclaim: [ReclaimEvent];
  deadline: [DeadlineEvent];
  error: [Error];
  /**
   * An acquire found no idle connection and no room to open one (the pool is at `max`), and was
   * queued to wait. Emitted only while someone listens (the mysql2 drop-in's `'enqueue'`).
   */
  enqueue: [];
}
