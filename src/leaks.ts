/**
 * Leak detection by lease age, and leases found by the garbage collector.
 *
 * One unref'd timer walks the active leases oldest first (the registry keeps acquire order)
 * and stops at the first one younger than the threshold, so a scan costs O(leaks + 1).
 * With `leakDetectionMs: 0` there is no timer and no acquire stack: zero cost per lease.
 */
import type { ActiveLeases, CallSite, LeaseRecord } from './lease';
import { now } from './time';

/** Frames kept in an acquire stack: enough to show the caller and its callers. */
const SITE_FRAMES = 5;

/** Capture the caller of `entry` (a public pool method) without formatting it. */
export function captureSite(entry: Function): CallSite {
  const site: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = SITE_FRAMES;
  Error.captureStackTrace(site, entry);
  Error.stackTraceLimit = limit;
  return site;
}

/**
 * Acquire stacks within a rate: a token bucket holding at most one second's worth, refilled at
 * `perSecond` by the leak detector's timer (not by reading the clock on every acquire). Below the
 * rate every acquire records its stack; above it a sample does, so leak detection costs a bounded
 * share of CPU however hot the pool runs (a capture costs V8 as much as the rest of a lease;
 * bench scenarios: the leak on/off budgets).
 */
export class StackSampler {
  #tokens: number;
  #refilledAt = now();

  constructor(private readonly perSecond: number) {
    this.#tokens = perSecond;
  }

  /** The caller of `entry`, or `undefined` when the budget is spent. */
  capture(entry: Function): CallSite | undefined {
    if (this.#tokens < 1) return undefined;
    this.#tokens--;
    return captureSite(entry);
  }

  /** Add the tokens earned since the last refill. */
  refill(): void {
    const at = now();
    this.#tokens = Math.min(this.perSecond, this.#tokens + ((at - this.#refilledAt) * this.perSecond) / 1000);
    this.#refilledAt = at;
  }
}

/** The acquire stack as users read it: "    at file:line" frames, no header line. */
export function formatSite(site: CallSite | undefined): string | undefined {
  const stack = site?.stack;
  if (stack === undefined) return undefined;
  const firstFrame = stack.indexOf('\n');
  return firstFrame === -1 ? '' : stack.slice(firstFrame + 1);
}

/** Periodic scan of `active` (acquire order) for leases older than `thresholdMs`. */
export class LeakDetector<C extends object> {
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly active: ActiveLeases<C>,
    private readonly thresholdMs: number,
    private readonly onLeak: (record: LeaseRecord<C>) => void,
    /** Refilled at every scan. */
    private readonly sampler: StackSampler | undefined,
  ) {}

  start(): void {
    if (this.thresholdMs <= 0 || this.#timer !== undefined) return;
    const periodMs = Math.min(1_000, Math.max(10, Math.floor(this.thresholdMs / 4)));
    this.#timer = setInterval(() => this.scan(), periodMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Report every lease past the threshold not reported yet; returns how many were reported. */
  scan(): number {
    this.sampler?.refill();
    const cutoff = now() - this.thresholdMs;
    let reported = 0;
    for (const record of this.active) {
      if (record.acquiredAt > cutoff) break;
      if (record.leakReported) continue;
      record.leakReported = true;
      reported++;
      this.onLeak(record);
    }
    return reported;
  }
}
