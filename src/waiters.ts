/**
 * The callers waiting for a connection, and the one timer their acquire deadlines share.
 */
import { now } from './time';

/** A caller waiting for a connection; linked into the pool's `WaiterList` while it waits. */
export class Waiter {
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  linked = false;
  constructor(
    readonly fail: (err: Error) => void,
    /** `now()` after which the wait times out; `Infinity`: never. */
    readonly deadline: number,
    /** Called once the deadline has passed. */
    readonly expire: () => void,
  ) {}
}

/**
 * The callers waiting for a connection, oldest first: a doubly linked list, not a Set. A Set
 * with this much churn keeps each hash table it outgrows reachable from the one before; once one
 * of them sits in the old generation (after any full GC), every later table and each waiter it
 * held (closures, promises, the generic-pool request) survive young-generation GCs and are
 * promoted in turn until the next full GC: scavenges of several milliseconds under contention.
 *
 * Acquire deadlines share one timer, armed for the earliest deadline (a timer per waiter costs
 * about 6% of a contended acquire): when it fires, every waiter past its deadline expires and the
 * timer is armed again for the next one. A served waiter leaves the timer as it is; with no waiter
 * left it is cleared, so an idle pool holds no timer.
 */
export class WaiterList {
  #head: Waiter | undefined = undefined;
  #tail: Waiter | undefined = undefined;
  #size = 0;
  #timer: NodeJS.Timeout | undefined = undefined;
  /** When the armed timer fires (`Infinity`: not armed). */
  #timerAt = Infinity;

  get size(): number {
    return this.#size;
  }

  add(waiter: Waiter): void {
    if (waiter.linked) return;
    waiter.linked = true;
    waiter.prev = this.#tail;
    waiter.next = undefined;
    if (this.#tail !== undefined) this.#tail.next = waiter;
    else this.#head = waiter;
    this.#tail = waiter;
    this.#size++;
    if (waiter.deadline < this.#timerAt) this.#arm(waiter.deadline);
  }

  remove(waiter: Waiter): void {
    if (!waiter.linked) return;
    waiter.linked = false;
    if (waiter.prev !== undefined) waiter.prev.next = waiter.next;
    else this.#head = waiter.next;
    if (waiter.next !== undefined) waiter.next.prev = waiter.prev;
    else this.#tail = waiter.prev;
    waiter.prev = undefined;
    waiter.next = undefined;
    this.#size--;
    if (this.#size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
    }
  }

  /** A copy, oldest first (failing a waiter removes it from the list). */
  toArray(): Waiter[] {
    const out: Waiter[] = [];
    for (let w = this.#head; w !== undefined; w = w.next) out.push(w);
    return out;
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
    const expired: Waiter[] = [];
    let next = Infinity;
    for (let w = this.#head; w !== undefined; w = w.next) {
      if (w.deadline <= reached) expired.push(w);
      else if (w.deadline < next) next = w.deadline;
    }
    if (next !== Infinity) this.#arm(next);
    for (const w of expired) w.expire();
  }
}
