/**
 * A lease: one borrowed connection. The public `Lease` is a thin handle; its state lives in a
 * `LeaseRecord` that the pool tracks (leak detector, active list). The pool never holds the
 * handle itself, so a handle the user drops can be found by the garbage collector.
 */
import type { Cleanup } from './defer';
import { guardConnection } from './guard';
import type { LeaseRecord, LeaseState } from './lease-record';

export { LeaseRecord, type CallSite, type LeaseState } from './lease-record';

/** What `pool.activeLeases()` reports for each active lease. */
export interface ActiveLeaseInfo {
  readonly id: number;
  readonly ageMs: number;
  readonly inTransaction: boolean;
  /** The acquire call site, when leak detection is on (`leakDetectionMs > 0`). */
  readonly stack: string | undefined;
}

/**
 * The pool's active leases in acquire order, oldest first: the leak detector's scan stops at the
 * first young one. An intrusive doubly linked list rather than a Set: a Set with one insert and
 * one delete per lease keeps each hash table it outgrows reachable from the one before, and once
 * one of them sits in the old generation, the records it held survive young-generation GCs.
 */
export class ActiveLeases<C extends object> implements Iterable<LeaseRecord<C>> {
  #first: LeaseRecord<C> | undefined = undefined;
  #last: LeaseRecord<C> | undefined = undefined;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** The oldest active lease. */
  get first(): LeaseRecord<C> | undefined {
    return this.#first;
  }

  add(record: LeaseRecord<C>): void {
    if (record.isActiveListed) return;
    record.isActiveListed = true;
    record.prevActive = this.#last;
    if (this.#last !== undefined) this.#last.nextActive = record;
    else this.#first = record;
    this.#last = record;
    this.#size++;
  }

  delete(record: LeaseRecord<C>): void {
    if (!record.isActiveListed) return;
    record.isActiveListed = false;
    const { prevActive, nextActive } = record;
    if (prevActive !== undefined) prevActive.nextActive = nextActive;
    else this.#first = nextActive;
    if (nextActive !== undefined) nextActive.prevActive = prevActive;
    else this.#last = prevActive;
    record.prevActive = undefined;
    record.nextActive = undefined;
    this.#size--;
  }

  *[Symbol.iterator](): Iterator<LeaseRecord<C>> {
    // The successor is read before yielding: the consumer may delete the current record.
    for (let record = this.#first; record !== undefined; ) {
      const next = record.nextActive;
      yield record;
      record = next;
    }
  }
}

/**
 * One borrowed connection. Release it with `release()` or `await using`; scoped helpers
 * (`withLease`, `withTx`) release it for you.
 */
export class Lease<C extends object = object> {
  /** @internal */
  readonly record: LeaseRecord<C>;
  #conn: C | undefined;

  /** @internal */
  constructor(record: LeaseRecord<C>) {
    this.record = record;
  }

  /** Lease number, unique in the process; appears in leak reports. */
  get id(): number {
    return this.record.id;
  }

  /** `'active'`, then `'released'` (given back) or `'revoked'` (taken back by the pool). */
  get state(): LeaseState {
    return this.record.state;
  }

  /**
   * The driver's own connection behind a guard: same API, but every use after release throws
   * `LeaseReleasedError` (or `LeaseRevokedError`), and `release/end/destroy` end the lease instead
   * of corrupting the pool.
   */
  get conn(): C {
    const record = this.record;
    if (record.state !== 'active') throw record.useError();
    return (this.#conn ??= guardConnection(record));
  }

  /** Aborted when the pool revokes the lease (deadline, shutdown, reclaim). */
  get signal(): AbortSignal {
    return this.record.signal;
  }

  /** True while a `withTx` scope is open on this lease. */
  get inTransaction(): boolean {
    return this.record.txDepth > 0;
  }

  /** Register a cleanup to run at release, last-in-first-out. */
  defer(cleanup: Cleanup): void {
    const record = this.record;
    if (record.state !== 'active' || record.releasing !== undefined) throw record.useError();
    if (typeof cleanup !== 'function') throw new TypeError('lease.defer() takes a function');
    (record.cleanups ??= []).push(cleanup);
  }

  /**
   * Give the connection back. Idempotent: later calls resolve when the first has finished.
   * Rejects with `CleanupError` if deferred cleanups threw (the connection is returned anyway).
   */
  release(): Promise<void> {
    return this.record.owner.releaseFromHandle(this.record);
  }

  /** `await using lease = await pool.acquire()` releases at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}
