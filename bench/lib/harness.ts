/**
 * The measuring engine of `npm run bench`: time-boxed runs of N concurrent callers, the variants
 * of one scenario interleaved in one process over several repetitions, medians, ratios, budgets.
 *
 * One timed run = `concurrency` async callers, each looping `await op()` until the deadline. The
 * clock is read every `checkEvery` ops per caller (reading it on every op would cost more than the
 * cheapest variants). Per run we record ops, wall time, process CPU (user + system, all threads)
 * and bytes allocated on the JS heap (from V8's GC profiler: heap growth plus what each GC freed).
 *
 * A forced full GC (`global.gc()`) runs once per concurrency, before the warm-up runs, never
 * between timed runs: a forced GC is memory-reducing, it throws away most optimized code ("weak
 * objects" deoptimizations), and the run after it would measure re-optimization, which costs
 * deep call stacks (leasepool's) more than shallow ones — up to a third of the DB throughput.
 * Garbage a run leaves behind is young and costs the next run next to nothing.
 *
 * CPU per op is the steadier figure when the machine is shared: wall time includes waiting for a
 * core, CPU time mostly does not.
 *
 * Budgets compare variants rep by rep: the ratio of a budget is the median over the reps of the
 * ratio within each rep (the two variants ran seconds apart), not the ratio of the two medians —
 * drift in the machine's speed over a scenario (a neighbour, a database checkpoint) cancels out.
 *
 * Heap per op comes from one extra run per variant and concurrency after all the timed ones, with
 * V8's GC profiler on: the profiler records heap statistics at every collection, which costs a
 * latency-bound run (one caller on a database) up to a sixth of its throughput, so no timed run
 * carries it (nor follows one that did).
 */
import { GCProfiler } from 'node:v8';

/** One thing being measured at one concurrency: `op` is one operation, `close` frees it. */
export interface VariantInstance {
  op(): Promise<unknown>;
  close?(): Promise<void>;
}

export interface VariantDef {
  /** Column label; budgets refer to variants by this name. */
  readonly name: string;
  /** Concurrencies it runs at; default: every concurrency of the scenario. */
  readonly at?: readonly number[];
  /** Create the pool (once per scenario: the same instance serves every concurrency and rep). */
  open(): Promise<VariantInstance> | VariantInstance;
}

/** A ratio of medians that must hold. */
export interface Budget {
  readonly variant: string;
  readonly baseline: string;
  readonly at: number;
  /** `'time'`: ns/op ratio must be <= limit. `'throughput'`: ops/s ratio must be >= limit. */
  readonly metric: 'time' | 'throughput';
  readonly limit: number;
  /** Why this budget exists (printed). */
  readonly note?: string;
}

export interface ThroughputConfig {
  readonly concurrencies: readonly number[];
  readonly variants: readonly VariantDef[];
  /** Variant the ratio column of the table is relative to. */
  readonly baseline: string;
  /** What the ratio column shows: time per op (lower is better) or throughput (higher is better). */
  readonly ratioMetric: 'time' | 'throughput';
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly checkEvery: number;
  readonly reps: number;
  readonly budgets: readonly Budget[];
  /** Print progress dots to stderr. */
  readonly progress?: boolean;
}

export interface RunSample {
  readonly ops: number;
  readonly elapsedMs: number;
  readonly nsPerOp: number;
  readonly opsPerSec: number;
  readonly cpuUsPerOp: number;
  readonly heapBytesPerOp: number;
}

export interface VariantResult {
  readonly variant: string;
  readonly concurrency: number;
  readonly samples: RunSample[];
  readonly median: RunSample;
  /** (max - min) / median of ns/op over the reps. */
  readonly spread: number;
}

export interface BudgetResult extends Budget {
  readonly ratio: number;
  /** Quartiles of the rep-by-rep ratios (when there were at least 4). */
  readonly q1?: number;
  readonly q3?: number;
  readonly ok: boolean;
  readonly line: string;
}

export interface ThroughputResult {
  readonly results: VariantResult[];
  readonly budgets: BudgetResult[];
  readonly tables: string[];
}

declare const gc: (() => void) | undefined;

/** A young-generation GC: what a run leaves behind is not collected during the next one. Keeps optimized code. */
function collectYoung(): void {
  if (typeof gc === 'function') (gc as unknown as (options: { type: 'minor' }) => void)({ type: 'minor' });
}

/** A deterministic pseudo-random sequence in [0, 1) (mulberry32): the same orders in every run of the bench. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A shuffled copy (Fisher-Yates). */
function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Collect garbage (needs `--expose-gc`; a no-op without it). */
export function collect(times = 1): void {
  if (typeof gc === 'function') for (let i = 0; i < times; i++) gc();
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * One time-boxed run of `concurrency` callers looping over `op`. With `measureHeap` the GC
 * profiler runs too (heap bytes per op); without it `heapBytesPerOp` is NaN.
 */
export async function timedRun(
  op: () => Promise<unknown>,
  concurrency: number,
  durationMs: number,
  checkEvery: number,
  measureHeap = false,
): Promise<RunSample> {
  await tick();
  const profiler = measureHeap ? new GCProfiler() : undefined;
  const heapStart = process.memoryUsage().heapUsed;
  profiler?.start();
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const deadline = start + durationMs;
  let failure: unknown;
  let stop = false;
  const caller = async (): Promise<number> => {
    let n = 0;
    try {
      while (!stop) {
        for (let i = 0; i < checkEvery; i++) await op();
        n += checkEvery;
        if (performance.now() >= deadline) break;
      }
    } catch (err) {
      failure ??= err;
      stop = true;
    }
    return n;
  };
  const callers: Promise<number>[] = [];
  for (let i = 0; i < concurrency; i++) callers.push(caller());
  const counts = await Promise.all(callers);
  const elapsedMs = performance.now() - start;
  const cpu = process.cpuUsage(cpuStart);
  const heapEnd = process.memoryUsage().heapUsed;
  const profile = profiler?.stop();
  if (failure !== undefined) throw failure;
  let freed = 0;
  for (const s of profile?.statistics ?? []) {
    freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
  }
  const ops = counts.reduce((a, b) => a + b, 0);
  return {
    ops,
    elapsedMs,
    nsPerOp: (elapsedMs * 1e6) / ops,
    opsPerSec: (ops * 1000) / elapsedMs,
    cpuUsPerOp: (cpu.user + cpu.system) / ops,
    heapBytesPerOp: profiler === undefined ? NaN : Math.max(0, heapEnd - heapStart + freed) / ops,
  };
}

/** The `q` quantile (0..1) of `values`, interpolated between the nearest ranks. */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const low = Math.floor(at);
  const high = Math.ceil(at);
  return (sorted[low] as number) + ((sorted[high] as number) - (sorted[low] as number)) * (at - low);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function medianSample(samples: readonly RunSample[]): RunSample {
  const m = (key: keyof RunSample): number => median(samples.map((s) => s[key]));
  return {
    ops: m('ops'),
    elapsedMs: m('elapsedMs'),
    nsPerOp: m('nsPerOp'),
    opsPerSec: m('opsPerSec'),
    cpuUsPerOp: m('cpuUsPerOp'),
    heapBytesPerOp: m('heapBytesPerOp'),
  };
}

/**
 * Measure every variant at every concurrency. Within one concurrency the variants run
 * interleaved, rep after rep, each rep in a fresh order drawn by a seeded shuffle: a run is
 * measurably affected by the one before it (on this machine the run after `pg.Pool.query` lost up
 * to 15%), so no variant may always follow the same neighbour — a plain rotation (A,B,C, B,C,A …)
 * has C before A in every rep. A young-generation GC before each run leaves none of the previous
 * run's garbage to it. A full GC and a warm-up run of each variant come first.
 */
export async function runThroughput(config: ThroughputConfig): Promise<ThroughputResult> {
  const instances = new Map<string, VariantInstance>();
  const results: VariantResult[] = [];
  try {
    const ops = new Map<string, () => Promise<unknown>>();
    for (const def of config.variants) {
      const instance = await def.open();
      instances.set(def.name, instance);
      ops.set(def.name, instance.op.bind(instance));
    }
    const opOf = (name: string): (() => Promise<unknown>) => {
      const op = ops.get(name);
      if (op === undefined) throw new Error(`no variant named ${name}`);
      return op;
    };
    for (const c of config.concurrencies) {
      const here = config.variants.filter((v) => v.at === undefined || v.at.includes(c));
      const samples = new Map<string, RunSample[]>(here.map((v) => [v.name, []]));
      collect(2);
      for (const v of here) await timedRun(opOf(v.name), c, config.warmupMs, config.checkEvery);
      const random = seededRandom(c);
      for (let rep = 0; rep < config.reps; rep++) {
        for (const v of shuffled(here, random)) {
          collectYoung();
          const sample = await timedRun(opOf(v.name), c, config.durationMs, config.checkEvery);
          samples.get(v.name)?.push(sample);
          if (config.progress === true) process.stderr.write('.');
        }
      }
      for (const v of here) {
        const s = samples.get(v.name) ?? [];
        const med = medianSample(s);
        const ns = s.map((x) => x.nsPerOp);
        results.push({ variant: v.name, concurrency: c, samples: s, median: med, spread: (Math.max(...ns) - Math.min(...ns)) / med.nsPerOp });
      }
    }
    // Heap per op last, once every timed run is done (see the header).
    for (let i = 0; i < results.length; i++) {
      const r = results[i] as VariantResult;
      const heap = await timedRun(opOf(r.variant), r.concurrency, config.durationMs / 2, config.checkEvery, true);
      results[i] = { ...r, median: { ...r.median, heapBytesPerOp: heap.heapBytesPerOp } };
    }
  } finally {
    if (config.progress === true) process.stderr.write('\n');
    for (const instance of instances.values()) await instance.close?.();
  }
  const budgets = config.budgets.map((b) => evaluateBudget(b, results));
  return { results, budgets, tables: config.concurrencies.map((c) => table(config, results, c)) };
}

function find(results: readonly VariantResult[], variant: string, at: number): VariantResult | undefined {
  return results.find((r) => r.variant === variant && r.concurrency === at);
}

function ratioOf(metric: 'time' | 'throughput', a: RunSample, b: RunSample): number {
  return metric === 'time' ? a.nsPerOp / b.nsPerOp : a.opsPerSec / b.opsPerSec;
}

export function evaluateBudget(budget: Budget, results: readonly VariantResult[]): BudgetResult {
  const a = find(results, budget.variant, budget.at);
  const b = find(results, budget.baseline, budget.at);
  const what = budget.metric === 'time' ? 'ns/op' : 'ops/s';
  if (a === undefined || b === undefined) {
    const bound = budget.metric === 'time' ? `≤ ${budget.limit}x` : `≥ ${budget.limit}x`;
    return { ...budget, ratio: NaN, ok: false, line: `c=${budget.at} ${budget.variant} / ${budget.baseline}: not measured (budget ${bound}) MISSED` };
  }
  // Rep by rep (the samples of one rep ran next to each other), then the median of those ratios.
  const reps = Math.min(a.samples.length, b.samples.length);
  const paired: number[] = [];
  for (let i = 0; i < reps; i++) paired.push(ratioOf(budget.metric, a.samples[i] as RunSample, b.samples[i] as RunSample));
  if (reps === 0) paired.push(ratioOf(budget.metric, a.median, b.median));
  return judgeRatios(budget, paired, `c=${budget.at} ${budget.variant} / ${budget.baseline}`, what);
}

/**
 * A wall-clock budget over rep-by-rep ratios (`'time'`: lower is better, `'throughput'`: higher).
 * On a two-core machine shared with the servers, a few percent is inside the noise of a
 * wall-clock ratio: the budget fails only when the whole middle half of the ratios is on the wrong
 * side (throughput: the upper quartile below the limit; time: the lower quartile above it). With
 * fewer than 4 ratios the median decides. The median is what the line reports.
 */
export function judgeRatios(budget: Budget, paired: readonly number[], label: string, unit: string): BudgetResult {
  const ratio = median(paired);
  const q1 = quantile(paired, 0.25);
  const q3 = quantile(paired, 0.75);
  const quartiles = paired.length >= 4;
  const judged = quartiles ? (budget.metric === 'time' ? q1 : q3) : ratio;
  const ok = budget.metric === 'time' ? judged <= budget.limit : judged >= budget.limit;
  const bound = budget.metric === 'time' ? `≤ ${budget.limit}x` : `≥ ${budget.limit}x`;
  const rule = quartiles ? `, middle half of ${paired.length} reps ${q1.toFixed(2)}–${q3.toFixed(2)}, fails only if all of it misses` : '';
  const line = `${label} = ${ratio.toFixed(2)}x ${unit} (budget ${bound}${rule}) ${ok ? 'OK' : 'MISSED'}`;
  return { ...budget, ratio, ok, line, ...(quartiles ? { q1, q3 } : {}) };
}

// ------------------------------------------------------------------ formatting

export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : String(n);
}

function fmtTime(ns: number): string {
  if (ns < 10_000) return `${fmtInt(ns)} ns`;
  return `${(ns / 1000).toFixed(1)} µs`;
}

function fmtOps(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(0);
}

function fmtBytes(n: number): string {
  if (n >= 10_240) return `${(n / 1024).toFixed(1)} KiB`;
  return `${fmtInt(n)} B`;
}

/** A plain text table: first column left-aligned, the others right-aligned. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function table(config: ThroughputConfig, results: readonly VariantResult[], c: number): string {
  return resultTable(results, config.baseline, config.ratioMetric, c, `medians of ${config.reps} reps`);
}

/** The table of one concurrency: a row per variant, with its ratio to `baseline`. */
export function resultTable(
  results: readonly VariantResult[],
  baseline: string,
  ratioMetric: 'time' | 'throughput',
  c: number,
  what: string,
): string {
  const base = find(results, baseline, c);
  const ratioHeader = ratioMetric === 'time' ? `ns/op ÷ ${baseline}` : `ops/s ÷ ${baseline}`;
  const rows = results
    .filter((r) => r.concurrency === c)
    .map((r) => [
      r.variant,
      fmtOps(r.median.opsPerSec),
      fmtTime(r.median.nsPerOp),
      `±${((r.spread * 100) / 2).toFixed(1)}%`,
      r.median.cpuUsPerOp.toFixed(2),
      fmtBytes(r.median.heapBytesPerOp),
      base === undefined ? '-' : `${ratioOf(ratioMetric, r.median, base.median).toFixed(2)}x`,
    ]);
  return `callers=${c} (${what})\n` + renderTable(['variant', 'ops/s', 'time/op', 'spread', 'CPU µs/op', 'heap/op', ratioHeader], rows);
}

/**
 * The results of one scenario run in several processes, as if one process had run all their reps:
 * each variant's samples in process order (so that the samples of one rep stay paired across
 * variants: every process runs the same reps for each of them), medians and spreads over all.
 * Heap per op is measured once per process: the median of those.
 */
export function mergeForks(forks: readonly (readonly VariantResult[])[]): VariantResult[] {
  const merged: VariantResult[] = [];
  for (const first of forks[0] ?? []) {
    const parts = forks.map((f) => find(f, first.variant, first.concurrency)).filter((r): r is VariantResult => r !== undefined);
    const samples = parts.flatMap((r) => r.samples);
    const med = medianSample(samples);
    const ns = samples.map((x) => x.nsPerOp);
    merged.push({
      variant: first.variant,
      concurrency: first.concurrency,
      samples,
      median: { ...med, heapBytesPerOp: median(parts.map((r) => r.median.heapBytesPerOp)) },
      spread: (Math.max(...ns) - Math.min(...ns)) / med.nsPerOp,
    });
  }
  return merged;
}
