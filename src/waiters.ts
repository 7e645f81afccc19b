/**
 * The waiting room: callers that found no idle connection, and how connections reach them.
 *
 * generic-pool owns the connections; the waiting room owns the callers waiting for one. A lease
 * released while someone waits hands its connection straight to the longest-waiting caller
 * (`handOff`): under contention a connection goes from one lease to the next without a round trip
 * through generic-pool's idle list and request queue (two promises, a loan and a queue node each
 * time). Connections that only generic-pool can provide — one it is about to create, or one that
 * came back idle — are fetched for the room (`gp.acquire()`) while it has room to provide them:
 * at most one fetch per waiting caller, and only while `borrowed + queued requests < max`, so a
 * fetch never sits in generic-pool's queue for a connection that cannot exist.
 *
 * Acquire deadlines share one timer, armed for the earliest deadline (a timer per waiter is a
 * visible share of a contended acquire, bench scenario: cycle): when it fires, every waiter past its deadline expires and the
 * timer is armed again for the next one. With no waiter left it is cleared: an idle pool holds no
 * timer.
 */
import type { Pool as GenericPool } from 'generic-pool';
import type { PooledConnection } from './connections';
import { newestRequest, withdrawRequest, type ResourceRequest } from './generic-pool-internals';
import { now } from './time';

/** Why a wait ended without a connection (the `leasepool_acquire_failures_total` reason). */
export type WaitFailure = 'timeout' | 'aborted' | 'error' | 'rejected';

/** What the room needs from its pool. */
export interface WaitingRoomHost<C extends object> {
  /** The error a caller gets when its acquire deadline passes (built while it still counts as waiting). */
  timeoutError(timeoutMs: number): Error;
  /** A wait ended without a connection. */
  failed(reason: WaitFailure): void;
  /** A fetched connection nobody waits for any more: back to generic-pool. */
  returnToPool(conn: PooledConnection<C>): void;
}

/**
 * A caller waiting for a connection, linked into the room while it waits (a doubly linked list,
 * not a Set: a Set with this much churn keeps each hash table it outgrows reachable from the one
 * before, and once one of them sits in the old generation every later waiter is promoted with it).
 */
class Waiter<C extends object> {
  prev: Waiter<C> | undefined = undefined;
  next: Waiter<C> | undefined = undefined;
  linked = false;
  resolve: (conn: PooledConnection<C>) => void = ignore;
  reject: (err: Error) => void = ignore;
  onAbort: (() => void) | undefined = undefined;
  constructor(
    /** `now()` when the wait began. */
    readonly startedAt: number,
    /** `now()` after which the wait times out; `Infinity`: never. */
    readonly deadline: number,
    readonly timeoutMs: number,
    readonly signal: AbortSignal | undefined,
  ) {}
}

export class WaitingRoom<C extends object> {
  #head: Waiter<C> | undefined = undefined;
  #tail: Waiter<C> | undefined = undefined;
  #size = 0;
  #timer: NodeJS.Timeout | undefined = undefined;
  /** When the armed timer fires (`Infinity`: not armed). */
  #timerAt = Infinity;
  /** `gp.acquire()` calls made for the room and not settled yet. */
  #fetching = 0;
  /** Those of them still queued in generic-pool (withdrawn when nobody needs them any more). */
  readonly #queued: ResourceRequest[] = [];
  #stopped = false;

  constructor(
    private readonly gp: GenericPool<PooledConnection<C>>,
    private readonly max: number,
    private readonly host: WaitingRoomHost<C>,
  ) {}

  /** Callers waiting now. */
  get size(): number {
    return this.#size;
  }

  /**
   * Wait for a connection until `startedAt + timeoutMs` or until `signal` aborts. The caller
   * checks first that none is idle (or that others already wait for one).
   */
  wait(startedAt: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<PooledConnection<C>> {
    if (signal?.aborted === true) {
      this.host.failed('aborted');
      return Promise.reject(abortReason(signal));
    }
    const waiter = new Waiter<C>(startedAt, startedAt + timeoutMs, timeoutMs, signal);
    const promise = new Promise<PooledConnection<C>>((resolve, reject) => {
      waiter.resolve = resolve;
      waiter.reject = reject;
    });
    this.#link(waiter);
    if (signal !== undefined) {
      waiter.onAbort = () => this.#end(waiter, 'aborted', abortReason(signal));
      signal.addEventListener('abort', waiter.onAbort, { once: true });
    }
    this.#pump();
    return promise;
  }

  /** When each waiting caller began waiting (`now()`), longest-waiting first (the lease inspector). */
  waitingSince(): number[] {
    const out: number[] = [];
    for (let w = this.#head; w !== undefined; w = w.next) out.push(w.startedAt);
    return out;
  }

  /** Give `conn` to the longest-waiting caller; false when nobody waits. */
  handOff(conn: PooledConnection<C>): boolean {
    const waiter = this.#head;
    if (waiter === undefined) return false;
    this.#unlink(waiter);
    waiter.resolve(conn);
    return true;
  }

  /**
   * Capacity may have come free (a connection was destroyed): fetch for the callers that no
   * release will serve.
   */
  pump(): void {
    if (this.#size > this.#fetching) this.#pump();
  }

  /** Every waiting caller gets `error`; fetches still queued in generic-pool are withdrawn. */
  failAll(error: Error, reason: WaitFailure): void {
    while (this.#head !== undefined) this.#end(this.#head, reason, error);
    this.#withdraw(this.#queued.length);
  }

  /**
   * The longest-waiting caller that began waiting no later than `startedBefore` gets `error` (the
   * caller a failed connect attempt begun then was made for); later callers keep waiting.
   */
  failOldest(error: Error, reason: WaitFailure, startedBefore: number): void {
    const waiter = this.#head;
    if (waiter !== undefined && waiter.startedAt <= startedBefore) this.#end(waiter, reason, error);
  }

  /**
   * A connect attempt begun at `startedAt` failed: the callers waiting hear of it at once, all of
   * them, or with `oneOnly` only the one it was made for. True when any caller was waiting.
   */
  failConnect(error: Error, startedAt: number, oneOnly: boolean): boolean {
    const waiting = this.#head !== undefined;
    if (oneOnly) this.failOldest(error, 'error', startedAt);
    else this.failAll(error, 'error');
    return waiting;
  }

  /** No more fetches (the pool is closing). */
  stop(): void {
    this.#stopped = true;
  }

  #pump(): void {
    const gp = this.gp;
    while (!this.#stopped && this.#fetching < this.#size && gp.borrowed + gp.pending < this.max) this.#fetch();
  }

  #fetch(): void {
    const gp = this.gp;
    this.#fetching++;
    const fetched = gp.acquire();
    const request = newestRequest(gp as GenericPool<unknown>, fetched);
    if (request !== undefined) this.#queued.push(request);
    fetched.then(
      (conn) => {
        this.#settled(request);
        if (!this.handOff(conn)) this.host.returnToPool(conn); // the caller it was for gave up
      },
      () => this.#settled(request), // withdrawn, or generic-pool is draining: nobody to tell
    );
  }

  #settled(request: ResourceRequest | undefined): void {
    this.#fetching--;
    if (request === undefined) return;
    const at = this.#queued.indexOf(request);
    if (at !== -1) this.#queued.splice(at, 1);
  }

  /** Withdraw up to `count` queued fetches, newest first: generic-pool stops creating for nobody. */
  #withdraw(count: number): void {
    for (let i = 0; i < count; i++) {
      const request = this.#queued.pop();
      if (request === undefined) return;
      withdrawRequest(request);
    }
  }

  /** End a wait without a connection (timeout, abort, failure). */
  #end(waiter: Waiter<C>, reason: WaitFailure, error: Error): void {
    if (!waiter.linked) return;
    this.#unlink(waiter);
    this.host.failed(reason);
    waiter.reject(error);
    // Fewer callers than fetches: the surplus would open connections for nobody.
    const surplus = this.#fetching - this.#size;
    if (surplus > 0) this.#withdraw(surplus);
  }

  #link(waiter: Waiter<C>): void {
    waiter.linked = true;
    waiter.prev = this.#tail;
    if (this.#tail !== undefined) this.#tail.next = waiter;
    else this.#head = waiter;
    this.#tail = waiter;
    this.#size++;
    if (waiter.deadline < this.#timerAt) this.#arm(waiter.deadline);
  }

  #unlink(waiter: Waiter<C>): void {
    waiter.linked = false;
    if (waiter.prev !== undefined) waiter.prev.next = waiter.next;
    else this.#head = waiter.next;
    if (waiter.next !== undefined) waiter.next.prev = waiter.prev;
    else this.#tail = waiter.prev;
    waiter.prev = undefined;
    waiter.next = undefined;
    this.#size--;
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    if (this.#size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
    }
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#onTimer(), Math.max(0, Math.ceil(at - now())));
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    // Timers have millisecond granularity (and libuv's clock may lag now() a little): a deadline
    // less than a millisecond away counts as reached rather than costing another timer.
    const reached = now() + 1;
    const expired: Waiter<C>[] = [];
    let next = Infinity;
    for (let w = this.#head; w !== undefined; w = w.next) {
      if (w.deadline <= reached) expired.push(w);
      else if (w.deadline < next) next = w.deadline;
    }
    if (next !== Infinity) this.#arm(next);
    for (const w of expired) {
      // Built while the caller still counts as waiting: the message shows the queue it was in.
      if (w.linked) this.#end(w, 'timeout', this.host.timeoutError(w.timeoutMs));
    }
  }
}

/** The error an aborted acquire rejects with: the signal's reason when it is an Error. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new DOMException('The acquire was aborted', 'AbortError');
}

const ignore = (): void => undefined;
