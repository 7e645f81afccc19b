/**
 * Latency bookkeeping for the overload scenario: per-op acquire wait and end-to-end latency in
 * growable typed arrays (no allocation per op once grown), and grant order.
 *
 * FIFO order of grants: every request takes a ticket when it asks; a grant is "out of order" when
 * an older ticket is still waiting at that moment (someone who asked earlier was overtaken).
 */
import { quantile } from './harness';

export class Samples {
  #values = new Float64Array(1 << 14);
  length = 0;

  push(v: number): void {
    if (this.length === this.#values.length) {
      const grown = new Float64Array(this.#values.length * 2);
      grown.set(this.#values);
      this.#values = grown;
    }
    this.#values[this.length++] = v;
  }

  /** The values, sorted ascending (a copy). */
  sorted(): Float64Array {
    return this.#values.slice(0, this.length).sort();
  }
}

/** Quantile of values already sorted ascending (nearest rank, interpolated). */
export function sortedQuantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const at = (sorted.length - 1) * q;
  const low = Math.floor(at);
  const high = Math.ceil(at);
  return (sorted[low] as number) + ((sorted[high] as number) - (sorted[low] as number)) * (at - low);
}

export class GrantOrder {
  #granted = new Uint8Array(1 << 14);
  #next = 0;
  /** Lowest ticket not yet granted. */
  #lowest = 0;
  grants = 0;
  outOfOrder = 0;

  ticket(): number {
    const t = this.#next++;
    if (t >= this.#granted.length) {
      const grown = new Uint8Array(this.#granted.length * 2);
      grown.set(this.#granted);
      this.#granted = grown;
    }
    return t;
  }

  grant(ticket: number): void {
    this.grants++;
    if (ticket !== this.#lowest) this.outOfOrder++;
    this.#granted[ticket] = 1;
    while (this.#lowest < this.#next && this.#granted[this.#lowest] === 1) this.#lowest++;
  }
}

/** Summary of one run (times in ms). */
export interface LatencySummary {
  readonly ops: number;
  readonly opsPerSec: number;
  readonly errors: number;
  readonly latency: { p50: number; p99: number; p999: number; max: number };
  readonly wait: { p50: number; p99: number; p999: number; max: number };
  /** Share of grants made while an older request still waited. */
  readonly outOfOrder: number;
}

export function summarize(ops: number, elapsedMs: number, errors: number, latency: Samples, wait: Samples, order: GrantOrder): LatencySummary {
  const l = latency.sorted();
  const w = wait.sorted();
  const q = (s: Float64Array) => ({ p50: sortedQuantile(s, 0.5), p99: sortedQuantile(s, 0.99), p999: sortedQuantile(s, 0.999), max: s[s.length - 1] ?? NaN });
  return { ops, opsPerSec: (ops * 1000) / elapsedMs, errors, latency: q(l), wait: q(w), outOfOrder: order.grants === 0 ? 0 : order.outOfOrder / order.grants };
}

/** Median of each field over runs. */
export function medianSummary(runs: readonly LatencySummary[]): LatencySummary {
  const m = (f: (s: LatencySummary) => number): number => quantile(runs.map(f), 0.5);
  const part = (g: (s: LatencySummary) => LatencySummary['wait']) => ({
    p50: m((s) => g(s).p50),
    p99: m((s) => g(s).p99),
    p999: m((s) => g(s).p999),
    max: m((s) => g(s).max),
  });
  return {
    ops: m((s) => s.ops),
    opsPerSec: m((s) => s.opsPerSec),
    errors: m((s) => s.errors),
    latency: part((s) => s.latency),
    wait: part((s) => s.wait),
    outOfOrder: m((s) => s.outOfOrder),
  };
}
