/**
 * `pg-spike` / `mysql-spike`: 1,000 callers arriving at once (one synchronous loop) on a cold pool
 * of max 10, each running `SELECT 1` once, for leasepool and the driver's pool; a fresh pool per
 * rep. Reported: time until all are served, connections opened and connect attempts in flight at
 * once (counted by wrapping the adapter's `connect`, and pg's `Client.connect`; mysql2's pool has
 * no connect hook, so only its opened connections are seen).
 *
 * Then with `maxWaiting: 100` (mysql2: `queueLimit: 100`): how many of the 1,000 are refused, how
 * long the refused ones took from their call to the rejection (during the burst that includes
 * issuing the rest of the burst), and, while the pool is still full, single calls one after the
 * other, each timed alone: 99% of those must be refused in under 1 ms of wall time (a single call on
 * a shared machine can lose its core for longer than that; the slowest one is reported).
 */
import { fmtInt, quantile, renderTable } from '../lib/harness';
import { ConnectCounter, mysqlKit, pgKit, type DriverKit } from '../lib/drivers';
import type { BenchOptions, Check, Scenario, ScenarioResult, Service } from '../lib/scenario';
import { mysqlService } from './mysql';
import { pgService } from './pg';

const CALLERS = 1_000;
const MAX = 10;
const MAX_WAITING = 100;
const REPS = 3;
const PROBES = 200;
const now = (): number => performance.now();

interface SpikeRun {
  readonly allServedMs: number;
  readonly served: number;
  readonly refused: number;
  readonly failed: number;
  readonly opened: number;
  readonly started: number;
  readonly maxInFlight: number;
  /** Call → rejection of each refused caller of the burst (ms). */
  readonly burstRefusalMs: number[];
  /** Single calls while the pool was full, each timed alone (ms). */
  readonly probeRefusalMs: number[];
  /** The process CPU time (user + system) each of those took (ms): what preemption does not inflate. */
  readonly probeCpuMs: number[];
}

interface Target {
  /** Start one caller: resolves when served, rejects when refused or failed. */
  call(): Promise<unknown>;
  isRefusal(err: unknown): boolean;
  /** True while a new call would be refused. */
  full(): boolean;
  close(): Promise<unknown>;
}

async function spike(target: Target, counter: ConnectCounter, probe: boolean): Promise<SpikeRun> {
  let served = 0;
  let refused = 0;
  let failed = 0;
  const burstRefusalMs: number[] = [];
  const probeRefusalMs: number[] = [];
  const probeCpuMs: number[] = [];
  const start = now();
  const calls: Promise<void>[] = new Array<Promise<void>>(CALLERS);
  for (let i = 0; i < CALLERS; i++) {
    const t0 = now();
    calls[i] = target.call().then(
      () => {
        served++;
      },
      (err: unknown) => {
        if (target.isRefusal(err)) {
          refused++;
          burstRefusalMs.push(now() - t0);
        } else failed++;
      },
    );
  }
  if (probe) {
    // The burst's own rejections are delivered first (they were queued before any probe could be).
    await new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; i < PROBES && target.full(); i++) {
      const t0 = now();
      const c0 = process.cpuUsage();
      try {
        await target.call();
        break;
      } catch (err) {
        if (!target.isRefusal(err)) break;
        probeRefusalMs.push(now() - t0);
        const cpu = process.cpuUsage(c0);
        probeCpuMs.push((cpu.user + cpu.system) / 1000);
      }
    }
  }
  await Promise.all(calls);
  const allServedMs = now() - start;
  await target.close();
  return { allServedMs, served, refused, failed, opened: counter.opened, started: counter.started, maxInFlight: counter.maxInFlight, burstRefusalMs, probeRefusalMs, probeCpuMs };
}

function spikeScenario(kit: DriverKit, service: Service, url: string): Scenario {
  const d = kit.driverName;
  const leasepool = (counter: ConnectCounter, maxWaiting?: number): Target => {
    const pool = kit.leasepool(url, { max: MAX, acquireTimeoutMs: 30_000, ...(maxWaiting === undefined ? {} : { maxWaiting }) }, counter);
    return {
      call: () => pool.withLease((conn) => conn.query('SELECT 1')),
      isRefusal: (err) => (err as { code?: unknown }).code === 'POOL_QUEUE_FULL' || (err as { name?: unknown }).name === 'PoolQueueFullError',
      full: () => pool.stats().pending >= (maxWaiting ?? Infinity),
      close: () => pool.close(),
    };
  };
  const driver = (counter: ConnectCounter, queueLimit?: number): Target => {
    const pool = kit.driverPool(url, MAX, counter, queueLimit);
    let waiting = 0;
    return {
      async call() {
        waiting++;
        let conn;
        try {
          conn = await pool.checkout();
        } finally {
          waiting--;
        }
        try {
          await conn.query('SELECT 1');
        } finally {
          conn.release(false);
        }
      },
      isRefusal: (err) => /queue limit/i.test(String((err as { message?: unknown }).message)),
      full: () => waiting >= MAX + (queueLimit ?? Infinity),
      close: () => pool.end(),
    };
  };
  return {
    name: `${kit.db}-spike`,
    title: `${fmtInt(CALLERS)} callers at once on a cold pool of max ${MAX} on ${service.name}; then with maxWaiting ${MAX_WAITING}`,
    service,
    async run(options: BenchOptions): Promise<ScenarioResult> {
      const reps = options.quick ? 1 : REPS;
      const runs: Record<string, SpikeRun[]> = {};
      const variants: [string, (c: ConnectCounter) => Target, boolean][] = [
        ['leasepool', (c) => leasepool(c), false],
        [d, (c) => driver(c), false],
        [`leasepool maxWaiting ${MAX_WAITING}`, (c) => leasepool(c, MAX_WAITING), true],
      ];
      if (kit.hasQueueLimit) variants.push([`${d} queueLimit ${MAX_WAITING}`, (c) => driver(c, MAX_WAITING), true]);
      for (let rep = 0; rep < reps; rep++) {
        for (const [name, open, probe] of rep % 2 === 0 ? variants : [...variants].reverse()) {
          const counter = new ConnectCounter();
          (runs[name] ??= []).push(await spike(open(counter), counter, probe));
          process.stderr.write('.');
        }
      }
      process.stderr.write('\n');
      const rows: string[][] = [];
      const checks: Check[] = [];
      const ms = (v: number): string => (Number.isFinite(v) ? v.toFixed(v < 10 ? 3 : 1) : '–');
      for (const [name] of variants) {
        const rs = runs[name] ?? [];
        const med = (f: (r: SpikeRun) => number): number => quantile(rs.map(f), 0.5);
        const burst = rs.flatMap((r) => r.burstRefusalMs);
        const probes = rs.flatMap((r) => r.probeRefusalMs);
        const probeCpu = rs.flatMap((r) => r.probeCpuMs);
        const counted = !(name.startsWith(d) && kit.db === 'mysql');
        rows.push([
          name,
          ms(med((r) => r.allServedMs)),
          fmtInt(med((r) => r.served)),
          fmtInt(med((r) => r.refused)),
          fmtInt(med((r) => r.failed)),
          String(Math.max(...rs.map((r) => r.opened))),
          counted ? String(Math.max(...rs.map((r) => r.maxInFlight))) : 'not seen',
          burst.length > 0 ? `${ms(quantile(burst, 0.5))} / ${ms(Math.max(...burst))}` : '–',
          probes.length > 0 ? `${ms(quantile(probes, 0.5))} / ${ms(quantile(probes, 0.99))} / ${ms(Math.max(...probes))} (${probes.length})` : '–',
          probeCpu.length > 0 ? ms(Math.max(...probeCpu)) : '–',
        ]);
        if (name.startsWith('leasepool')) {
          const opened = Math.max(...rs.map((r) => r.opened));
          const inFlight = Math.max(...rs.map((r) => r.maxInFlight));
          checks.push({ label: `${name}: connections opened ≤ max`, ok: opened <= MAX, detail: `${opened} opened, at most ${inFlight} connect attempts in flight, max ${MAX}` });
          const failed = rs.reduce((a, r) => a + r.failed, 0);
          checks.push({ label: `${name}: no caller failed`, ok: failed === 0, detail: `${failed} failed` });
        }
        if (name.startsWith('leasepool maxWaiting')) {
          // On a shared two-core machine a single call can lose its core for milliseconds, and
          // process CPU time includes GC helper threads: the check holds the 99th percentile of
          // wall time; the slowest single refusal is reported beside it.
          const worstCpu = Math.max(...probeCpu);
          const p99 = quantile(probes, 0.99);
          checks.push({
            label: `${name}: refusals (timed alone, pool full) < 1 ms at p99`,
            ok: probes.length > 0 && p99 < 1,
            detail: `${probes.length} refusals, CPU slowest ${ms(worstCpu)} ms, wall p99 ${ms(p99)} ms, wall slowest ${ms(Math.max(...probes))} ms`,
          });
        }
      }
      const table =
        `${fmtInt(CALLERS)} callers at once, cold pool, max ${MAX} (medians of ${reps} reps; times in ms)\n` +
        renderTable(['variant', 'all served', 'served', 'refused', 'failed', 'opened', 'connects in flight', 'burst refusal p50 / max', 'refusal alone p50 / p99 / max (n)', 'refusal alone, CPU max'], rows);
      return { tables: [table], budgets: [], checks, extra: { runs } };
    },
  };
}

export const pgSpike = spikeScenario(pgKit, pgService, process.env['PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test');
export const mysqlSpike = spikeScenario(mysqlKit, mysqlService, process.env['MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/test');
