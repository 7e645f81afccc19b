/**
 * The chaos scenarios, each runnable on PostgreSQL and MariaDB. Each returns a `ScenarioReport`
 * (counts, recovery time, the database's verdict, the return-in-transaction checks); `problems()`
 * turns a report into the list of broken promises (empty when all held). The jest files in
 * `test/chaos/` assert on that list; `bench/chaos-report.ts` prints the reports as a table.
 */
import { Registry } from 'prom-client';
import { createPool } from '../../../src/index';
import type { Adapter } from '../../../src/adapter';
import type { Pool } from '../../../src/pool';
import type { PoolOptions } from '../../../src/options';
import type { Logger } from '../../../src/logger';
import { FaultProxy } from '../../helpers/fault-proxy';
import {
  Bank,
  probeIdleConnections,
  recoveryMs,
  ReturnWatch,
  runLoad,
  summarize,
  transferOnce,
  type Outcome,
  type Summary,
  type Verdict,
} from './bank';
import { startPrivateServer } from './private-server';
import type { DbTarget, Endpoint } from './targets';

export interface ScenarioReport {
  readonly scenario: string;
  readonly database: string;
  readonly summary: Summary;
  readonly verdict: Verdict;
  /** Connections handed back to the pool by the release path, and how many were not idle (driver's word). */
  readonly returned: number;
  readonly returnedInTransaction: number;
  /** Idle connections asked at the end (server's word), and how many were inside a transaction. */
  readonly probed: number;
  readonly probedInTransaction: number;
  /** From the end of the fault to the first commit after it (ms). */
  readonly recoveryMs: number | undefined;
  /** Bound every single transfer had to settle within (ms), if the scenario sets one. */
  readonly boundMs: number | undefined;
  /** Scenario-specific figures and checks. */
  readonly extra: Record<string, unknown>;
  /** Scenario-specific problems found while running. */
  readonly issues: readonly string[];
}

/** Every promise a report breaks; empty when the scenario held up. */
export function problems(report: ScenarioReport): string[] {
  const out: string[] = [...report.issues];
  const { summary: s, verdict: v } = report;
  if (s.unclear > 0) out.push(`${s.unclear} transfers failed with an unclear error: ${s.unclearSamples.join(' | ')}`);
  if (!v.invariantHeld) out.push(`balance invariant broken: sum ${v.sum} (expected ${v.expectedSum}), half-applied accounts ${v.halfAppliedAccounts.join(',')}`);
  if (v.lostCommits.length > 0) out.push(`${v.lostCommits.length} transfers reported committed are missing`);
  if (v.phantomCommits.length > 0) out.push(`${v.phantomCommits.length} transfers reported failed were committed (ops ${v.phantomCommits.slice(0, 5).join(',')})`);
  if (report.returnedInTransaction > 0) out.push(`${report.returnedInTransaction} connections went back to the pool not idle`);
  if (report.probedInTransaction > 0) out.push(`${report.probedInTransaction} idle connections were inside a transaction (server's word)`);
  if (s.committed === 0) out.push('no transfer committed at all');
  if (report.boundMs !== undefined && s.longestMs > report.boundMs) out.push(`a transfer took ${Math.round(s.longestMs)} ms to settle (bound ${report.boundMs} ms)`);
  return out;
}

/** A logger that counts and keeps the last few lines (pools log every broken connection). */
function quietLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (_obj: unknown, msg?: string): void => {
    if (lines.length < 200) lines.push(String(msg));
  };
  return { lines, warn: keep, error: keep, info: keep, debug: () => undefined };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Harness {
  /** Ask every idle connection (server's word) now; the harness does it after `body` unless it was done. */
  probe(): Promise<void>;
  readonly pool: Pool<object>;
  readonly bank: Bank;
  readonly registry: Registry;
  readonly adapter: Adapter<object>;
}

/**
 * Set up tables and a pool, run `body`, then: probe every idle connection (server's word), close
 * the pool, judge the database, drop the tables. The release probe watches the whole time.
 */
export async function harness(
  target: DbTarget,
  scenario: string,
  endpoint: Endpoint,
  adapter: Adapter<object>,
  poolOptions: PoolOptions,
  body: (h: Harness) => Promise<{ outcomes: Outcome[]; recoveryMs?: number | undefined; boundMs?: number; extra?: Record<string, unknown>; issues?: string[] }>,
): Promise<ScenarioReport> {
  const bank = new Bank(target, endpoint, `chaos_${scenario.replace(/[^a-z0-9]+/gi, '_').toLowerCase()}_${target.name}`);
  await bank.setup();
  const registry = new Registry();
  const pool = createPool(adapter, { name: 'chaos', leakDetectionMs: 0, logger: quietLogger(), metrics: { registry }, ...poolOptions });
  const watch = new ReturnWatch(target).install();
  let result: Awaited<ReturnType<typeof body>>;
  let probe: { probed: number; inTransaction: number } | undefined;
  const runProbe = async (): Promise<void> => {
    probe = await probeIdleConnections(pool, target);
  };
  try {
    result = await body({ pool, bank, registry, adapter, probe: runProbe });
    if (probe === undefined) await runProbe();
  } finally {
    watch.uninstall();
    await pool.close({ timeoutMs: 2_000 });
  }
  const verdict = await bank.verify(result.outcomes);
  await bank.drop();
  return {
    scenario,
    database: target.name,
    summary: summarize(result.outcomes),
    verdict,
    returned: watch.returned,
    returnedInTransaction: watch.inTransaction,
    probed: probe?.probed ?? 0,
    probedInTransaction: probe?.inTransaction ?? 0,
    recoveryMs: result.recoveryMs,
    boundMs: result.boundMs,
    extra: result.extra ?? {},
    issues: result.issues ?? [],
  };
}

/** Wrap an adapter to know its live raw connections (to pick backends to kill). */
function tracking(adapter: Adapter<object>): { adapter: Adapter<object>; live: Set<object> } {
  const live = new Set<object>();
  return {
    live,
    adapter: {
      ...adapter,
      async connect(signal, events) {
        const raw = await adapter.connect(signal, events);
        live.add(raw);
        return raw;
      },
      async close(raw) {
        live.delete(raw);
        return adapter.close(raw);
      },
    },
  };
}

async function counterValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return 0;
  const data = await metric.get();
  return data.values
    .filter((v) => Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val))
    .reduce((sum, v) => sum + v.value, 0);
}

export interface ScenarioOptions {
  /** Scale for durations (the report may run longer; tests keep 1). */
  readonly scale?: number;
}

// ---------------------------------------------------------------------------------------------

/** Backends killed at random (`pg_terminate_backend` / `KILL`) during a transfer load. */
export async function killBackends(target: DbTarget, options: ScenarioOptions = {}): Promise<ScenarioReport> {
  const scale = options.scale ?? 1;
  const { adapter, live } = tracking(target.adapter(target.endpoint, { tag: 'lp_chaos_kill' }));
  return harness(target, 'kill backends', target.endpoint, adapter, { max: 6, connectTimeoutMs: 3_000, acquireTimeoutMs: 5_000 }, async ({ pool, bank }) => {
    const killDurationMs = 3_000 * scale;
    const startedAt = performance.now();
    let killing = true;
    let stopAt = Infinity;
    const kills: number[] = [];
    const load = runLoad(pool, bank, { workers: 8, stop: () => performance.now() > stopAt, tx: { retries: 2 }, sleepMs: 5 });
    const admin = await bank.target.admin(bank.endpoint);
    try {
      while (performance.now() - startedAt < killDurationMs) {
        await sleep(60 + Math.random() * 140);
        const candidates = [...live];
        const victim = candidates[Math.floor(Math.random() * candidates.length)];
        const id = victim === undefined ? undefined : target.backendId(victim);
        if (id === undefined) continue;
        await target.kill(admin, id);
        kills.push(performance.now());
      }
    } finally {
      killing = false;
      await admin.close();
    }
    const lastKill = kills[kills.length - 1] ?? performance.now();
    stopAt = lastKill + 1_500 * scale;
    const outcomes = await load;
    // Worst gap between a kill and the next commit that started after it.
    let worstGap = 0;
    for (const k of kills) worstGap = Math.max(worstGap, recoveryMs(outcomes, k) ?? Infinity);
    void killing;
    return {
      outcomes,
      recoveryMs: recoveryMs(outcomes, lastKill),
      boundMs: 5_000 + 3_000 + 2_000,
      extra: { kills: kills.length, worstKillToCommitMs: Math.round(worstGap) },
      issues: kills.length < 5 ? [`only ${kills.length} backends were killed`] : [],
    };
  });
}

/** The server really stops and starts again mid-load (a private server: see private-server.ts). */
export async function serverRestart(target: DbTarget, options: ScenarioOptions = {}): Promise<ScenarioReport> {
  const scale = options.scale ?? 1;
  const server = await startPrivateServer(target.name);
  try {
    const adapter = target.adapter(server.endpoint, { tag: 'lp_chaos_restart' });
    const connectTimeoutMs = 1_000;
    const acquireTimeoutMs = 2_000;
    return await harness(target, 'server restart', server.endpoint, adapter, { max: 6, connectTimeoutMs, acquireTimeoutMs }, async ({ pool, bank }) => {
      let stopAt = Infinity;
      const load = runLoad(pool, bank, { workers: 6, stop: () => performance.now() > stopAt, tx: { retries: 1 }, sleepMs: 2 });
      await sleep(1_000 * scale);
      const downAt = performance.now();
      await server.stop();
      const stoppedAt = performance.now();
      await sleep(1_000 * scale);
      const outageFailuresBefore = performance.now();
      await server.start();
      const upAt = performance.now();
      stopAt = upAt + 3_000 * scale;
      const outcomes = await load;
      const during = outcomes.filter((o) => o.endedAt >= downAt && o.startedAt <= upAt);
      const duringSummary = summarize(during);
      const issues: string[] = [];
      if (duringSummary.attempted - duringSummary.committed === 0) issues.push('no transfer failed during the outage (was the server down?)');
      void outageFailuresBefore;
      return {
        outcomes,
        recoveryMs: recoveryMs(outcomes, upAt),
        // Each transfer: at most an acquire wait (connects fail fast within connectTimeoutMs) and a hold.
        boundMs: acquireTimeoutMs + connectTimeoutMs + 5_000,
        extra: {
          stopMs: Math.round(stoppedAt - downAt),
          outageMs: Math.round(upAt - downAt),
          duringOutage: { attempted: duringSummary.attempted, committed: duringSummary.committed, byCode: duringSummary.byCode },
        },
        issues,
      };
    });
  } finally {
    await server.destroy();
  }
}

/** A network blackhole (proxy): acquires fail within their timeouts, nothing hangs; then recovery. */
export async function blackhole(target: DbTarget, options: ScenarioOptions = {}): Promise<ScenarioReport> {
  const scale = options.scale ?? 1;
  const proxy = await FaultProxy.start({ host: target.endpoint.host, port: target.endpoint.port });
  try {
    const adapter = target.adapter(target.endpoint, { port: proxy.port, tag: 'lp_chaos_blackhole' });
    const connectTimeoutMs = 500;
    const acquireTimeoutMs = 1_000;
    const txTimeoutMs = 1_500;
    return await harness(target, 'blackhole', target.endpoint, adapter, { max: 4, connectTimeoutMs, acquireTimeoutMs }, async ({ pool, bank, probe }) => {
      let stopAt = Infinity;
      const load = runLoad(pool, bank, { workers: 6, stop: () => performance.now() > stopAt, tx: { timeoutMs: txTimeoutMs }, sleepMs: 2 });
      await sleep(1_000 * scale);
      const holeAt = performance.now();
      proxy.setMode('blackhole');
      await sleep(2_000 * scale);
      proxy.setMode('pass');
      const healedAt = performance.now();
      stopAt = healedAt + 3_000 * scale;
      const outcomes = await load;
      const during = summarize(outcomes.filter((o) => o.endedAt >= holeAt && o.startedAt <= healedAt));
      const issues: string[] = [];
      if (during.attempted === during.committed) issues.push('nothing failed while blackholed');

      await probe();
      // close() while leases hang on a blackholed socket: it must meet its deadline.
      const closeTimeoutMs = 500;
      const stuck = await Promise.all([pool.acquire(), pool.acquire()]);
      proxy.setMode('blackhole');
      const hanging = stuck.map((lease) => target.query(lease.conn, 'SELECT 1').catch((err: unknown) => err));
      const closeStarted = performance.now();
      const summaryOfClose = await pool.close({ timeoutMs: closeTimeoutMs });
      const closeMs = performance.now() - closeStarted;
      proxy.setMode('pass');
      const hangingResults = await Promise.race([Promise.all(hanging), sleep(5_000).then(() => 'still hanging')]);
      if (hangingResults === 'still hanging') issues.push('queries on blackholed connections still hang 5 s after close()');
      // close() = wait for leases up to timeoutMs, then one grace period (2 s) to reclaim what is
      // left and close idle connections; plus scheduling slack on a loaded machine.
      const closeBoundMs = closeTimeoutMs + 2_000 + 500;
      if (closeMs > closeBoundMs) issues.push(`close({ timeoutMs: ${closeTimeoutMs} }) took ${Math.round(closeMs)} ms (bound ${closeBoundMs} ms)`);
      return {
        outcomes,
        recoveryMs: recoveryMs(outcomes, healedAt),
        boundMs: acquireTimeoutMs + txTimeoutMs + 1_000,
        extra: {
          duringBlackhole: { attempted: during.attempted, committed: during.committed, byCode: during.byCode },
          closeMs: Math.round(closeMs),
          closeSummary: summaryOfClose,
        },
        issues,
      };
    });
  } finally {
    await proxy.close();
  }
}

/** Latency spikes (proxy) against lease deadlines: over-long leases are revoked, rolled back, counted. */
export async function latencySpikes(target: DbTarget, options: ScenarioOptions = {}): Promise<ScenarioReport> {
  const scale = options.scale ?? 1;
  const proxy = await FaultProxy.start({ host: target.endpoint.host, port: target.endpoint.port });
  try {
    const adapter = target.adapter(target.endpoint, { port: proxy.port, tag: 'lp_chaos_latency' });
    const leaseTimeoutMs = 400;
    return await harness(target, 'latency spikes', target.endpoint, adapter, { max: 5, leaseTimeoutMs, acquireTimeoutMs: 5_000 }, async ({ pool, bank, registry }) => {
      let stopAt = Infinity;
      const load = runLoad(pool, bank, { workers: 6, stop: () => performance.now() > stopAt, sleepMs: 0 });
      await sleep(800 * scale);
      const spikeAt = performance.now();
      proxy.setLatency(150);
      await sleep(1_500 * scale);
      proxy.setLatency(0);
      const calmAt = performance.now();
      stopAt = calmAt + 2_000 * scale;
      const outcomes = await load;
      // A deadline that hits during COMMIT is reported as TX_OUTCOME_UNKNOWN caused by LEASE_TIMEOUT.
      const timeouts = outcomes.filter((o) => o.code === 'LEASE_TIMEOUT' || o.causeCode === 'LEASE_TIMEOUT').length;
      // Let reclaims still in flight (cancel, rollback, destroy) finish before reading the counter.
      await sleep(300);
      // A deadline is a policy, not a leak: each one counts as `deadline`, none as `leak_reclaimed`.
      const reclaimed = await counterValue(registry, 'leasepool_recoveries_total', { kind: 'deadline' });
      const asLeaks = await counterValue(registry, 'leasepool_recoveries_total', { kind: 'leak_reclaimed' });
      const issues: string[] = [];
      if (timeouts === 0) issues.push('no lease hit its deadline during the spike');
      if (reclaimed !== timeouts) issues.push(`recoveries_total{kind="deadline"} is ${reclaimed}, but ${timeouts} transfers hit their lease deadline`);
      if (asLeaks !== 0) issues.push(`recoveries_total{kind="leak_reclaimed"} is ${asLeaks}: deadlines were counted as leaks`);
      void spikeAt;
      return {
        outcomes,
        recoveryMs: recoveryMs(outcomes, calmAt),
        boundMs: 5_000 + leaseTimeoutMs + 1_000,
        extra: { leaseTimeouts: timeouts, deadlineMetric: reclaimed },
        issues,
      };
    });
  } finally {
    await proxy.close();
  }
}

/**
 * One connection cut mid-statement at a time (proxy `cutNext`): right after a `COMMIT` or an
 * `UPDATE` reaches the server, the connection is cut before the reply. A cut UPDATE must roll the
 * transfer back; a cut COMMIT must be reported as TX_OUTCOME_UNKNOWN (never retried, never
 * reported as failed: the database decides), and either way nothing is half applied.
 */
export async function cutMidQuery(target: DbTarget, options: ScenarioOptions = {}): Promise<ScenarioReport> {
  const scale = options.scale ?? 1;
  const proxy = await FaultProxy.start({ host: target.endpoint.host, port: target.endpoint.port });
  try {
    const adapter = target.adapter(target.endpoint, { port: proxy.port, tag: 'lp_chaos_cut' });
    return await harness(target, 'cut mid-query', target.endpoint, adapter, { max: 6, connectTimeoutMs: 3_000, acquireTimeoutMs: 5_000 }, async ({ pool, bank }) => {
      let stopAt = Infinity;
      const load = runLoad(pool, bank, { workers: 8, stop: () => performance.now() > stopAt, tx: { retries: 2 }, sleepMs: 1 });
      const startedAt = performance.now();
      const cuts = { COMMIT: 0, UPDATE: 0 };
      let lastCut = startedAt;
      while (performance.now() - startedAt < 3_000 * scale) {
        const word = Math.random() < 0.5 ? 'COMMIT' : 'UPDATE';
        const needle = Buffer.from(word);
        const cut = proxy.cutNext((chunk) => chunk.includes(needle));
        const landed = await Promise.race([cut.then(() => true), sleep(1_000).then(() => false)]);
        if (!landed) proxy.disarm();
        else {
          cuts[word]++;
          lastCut = performance.now();
        }
        await sleep(50 + Math.random() * 100);
      }
      stopAt = lastCut + 1_500 * scale;
      const outcomes = await load;
      const issues: string[] = [];
      if (cuts.COMMIT === 0 || cuts.UPDATE === 0) issues.push(`cuts landed: ${JSON.stringify(cuts)}`);
      return { outcomes, recoveryMs: recoveryMs(outcomes, lastCut), boundMs: 5_000 + 3_000 + 2_000, extra: { cuts }, issues };
    });
  } finally {
    await proxy.close();
  }
}

/** 10,000 concurrent `withTx` on `max: 10` with `maxWaiting: 2000`. */
export async function flood(target: DbTarget, options: { calls?: number; maxWaiting?: number } = {}): Promise<ScenarioReport> {
  const calls = options.calls ?? 10_000;
  const maxWaiting = options.maxWaiting ?? 2_000;
  const max = 10;
  const adapter = target.adapter(target.endpoint, { tag: 'lp_chaos_flood' });
  return harness(target, 'flood', target.endpoint, adapter, { max, maxWaiting, acquireTimeoutMs: 60_000 }, async ({ pool, bank }) => {
    const gc = (globalThis as { gc?: () => void }).gc;
    // Warm up first: open all `max` connections (each driver connection holds its own buffers) so
    // the heap comparison sees what the flood leaves behind, not the pool's steady state.
    await Promise.all(Array.from({ length: 4 * max }, () => transferOnce(pool, bank, undefined, 0)));
    gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    let peakHeap = heapBefore;
    let peakPending = 0;
    const sampler = setInterval(() => {
      peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
      peakPending = Math.max(peakPending, pool.stats().pending);
    }, 20);
    const startedAt = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: calls }, (_, i) => {
        const outcome = transferOnce(pool, bank, undefined, 0);
        if (i === calls - 1) peakPending = Math.max(peakPending, pool.stats().pending);
        // Keep the list small while the heap is measured: refusals need no message.
        return outcome.then((o) => (o.code === 'POOL_QUEUE_FULL' ? { ...o, message: undefined } : o));
      }),
    );
    const elapsedMs = performance.now() - startedAt;
    clearInterval(sampler);
    for (let i = 0; i < 3; i++) {
      gc?.();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const heapAfter = process.memoryUsage().heapUsed;
    const queueFull = outcomes.filter((o) => o.code === 'POOL_QUEUE_FULL').length;
    const committed = outcomes.filter((o) => o.kind === 'committed').length;
    const issues: string[] = [];
    // At most maxWaiting callers queue; up to `max` more may take a free slot without queueing.
    if (queueFull < calls - maxWaiting - max || queueFull > calls - maxWaiting) {
      issues.push(`${queueFull} POOL_QUEUE_FULL rejections; expected ${calls - maxWaiting - max}..${calls - maxWaiting}`);
    }
    if (committed + queueFull !== calls) issues.push(`${calls - committed - queueFull} transfers neither committed nor were refused with POOL_QUEUE_FULL`);
    if (peakPending > maxWaiting) issues.push(`pending peaked at ${peakPending} > maxWaiting ${maxWaiting}`);
    const MiB = 1024 * 1024;
    // The peak is mostly garbage awaiting a GC (10,000 calls' promises, closures and 8,000 errors
    // with stacks), so it moves with GC timing: measured 40-250 MiB on an idle or a busy machine.
    // This bound only catches a runaway; what the flood leaves behind is the after-GC check below.
    if (peakHeap - heapBefore > 512 * MiB) issues.push(`heap grew by ${((peakHeap - heapBefore) / MiB).toFixed(1)} MiB during the flood`);
    if (gc !== undefined && heapAfter - heapBefore > 8 * MiB) issues.push(`heap after the flood is ${((heapAfter - heapBefore) / MiB).toFixed(1)} MiB above before`);
    return {
      outcomes,
      recoveryMs: undefined,
      extra: {
        calls,
        maxWaiting,
        queueFull,
        peakPending,
        elapsedMs: Math.round(elapsedMs),
        heapBeforeMiB: +(heapBefore / MiB).toFixed(1),
        heapPeakMiB: +(peakHeap / MiB).toFixed(1),
        heapAfterMiB: +(heapAfter / MiB).toFixed(1),
      },
      issues,
    };
  });
}

export const DB_SCENARIOS = [
  { name: 'kill backends', run: killBackends },
  { name: 'server restart', run: serverRestart },
  { name: 'blackhole', run: blackhole },
  { name: 'latency spikes', run: latencySpikes },
  { name: 'cut mid-query', run: cutMidQuery },
  { name: 'flood', run: (t: DbTarget) => flood(t) },
] as const;
