/**
 * `pg-overload` / `mysql-overload`: more callers than connections. 256 callers loop on a pool of
 * max 10, each op one short statement (`SELECT 1`, and a 2 ms server-side sleep), for leasepool's
 * `withLease` against the driver pool's check-out/query/release, and `withTx` against the same
 * transaction written by hand on the driver's pool. The variants take turns rep after rep in a
 * seeded shuffled order, as in the other scenarios.
 *
 * Per op: acquire wait (call → connection in hand) and end-to-end latency (call → released), from
 * which p50 / p99 / p99.9 / max; throughput; and grant order. For the transaction variants the wait
 * runs until the transaction is open (withTx's body starts after BEGIN; the hand-written one is
 * timed the same way), so their grant order also reflects BEGIN round trips (the share of grants made while an
 * older request still waited: 0 is strict FIFO).
 *
 * Budgets (wall clock, so judged on the middle half of the rep-by-rep ratios, see
 * `judgeRatios`): leasepool's p99 wait and max wait ≤ 1x the driver pool's, throughput ≥ 0.95x.
 */
import { fmtInt, judgeRatios, renderTable, type BudgetResult } from '../lib/harness';
import { ConnectCounter, mysqlKit, pgKit, type DriverKit, type DriverPool, type LeasePool } from '../lib/drivers';
import { GrantOrder, medianSummary, Samples, summarize, type LatencySummary } from '../lib/latency';
import type { BenchOptions, Scenario, ScenarioResult, Service } from '../lib/scenario';
import { mysqlService } from './mysql';
import { pgService } from './pg';

const CALLERS = 256;
const MAX = 10;
const RUN_MS = 600;
const REPS = 4;

const now = (): number => performance.now();

interface Op {
  /** One op: calls `granted()` once it holds a connection. */
  run(granted: () => void): Promise<unknown>;
}

interface Variant {
  readonly name: string;
  /** The variant a budget compares this one with (none for baselines). */
  readonly baseline?: string;
  readonly op: Op;
}

function leaseOp(pool: LeasePool, sql: string): Op {
  return {
    run: (granted) =>
      pool.withLease((conn) => {
        granted();
        return conn.query(sql);
      }),
  };
}

function txOp(pool: LeasePool, sql: string): Op {
  return {
    run: (granted) =>
      pool.withTx((conn) => {
        granted();
        return conn.query(sql);
      }),
  };
}

function driverOp(pool: DriverPool, sql: string): Op {
  return {
    async run(granted) {
      const conn = await pool.checkout();
      granted();
      let broken = false;
      try {
        return await conn.query(sql);
      } catch (err) {
        broken = true;
        throw err;
      } finally {
        conn.release(broken);
      }
    },
  };
}

function driverTxOp(pool: DriverPool, sql: string, begin: string): Op {
  return {
    async run(granted) {
      const conn = await pool.checkout();
      let broken = false;
      try {
        await conn.query(begin);
        // As for withTx, whose body (where the grant is seen) starts once BEGIN is answered.
        granted();
        const out = await conn.query(sql);
        await conn.query('COMMIT');
        return out;
      } catch (err) {
        await conn.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw err;
      } finally {
        conn.release(broken);
      }
    },
  };
}

/** `callers` loops of `op` for `durationMs`; latency and wait per op. */
async function timed(op: Op, callers: number, durationMs: number): Promise<LatencySummary> {
  const latency = new Samples();
  const wait = new Samples();
  const order = new GrantOrder();
  let errors = 0;
  const start = now();
  const deadline = start + durationMs;
  const caller = async (): Promise<number> => {
    let n = 0;
    while (now() < deadline) {
      const t0 = now();
      const ticket = order.ticket();
      let tGrant = NaN;
      try {
        await op.run(() => {
          tGrant = now();
          order.grant(ticket);
        });
        n++;
      } catch {
        errors++;
      }
      const t1 = now();
      if (!Number.isNaN(tGrant)) {
        wait.push(tGrant - t0);
        latency.push(t1 - t0);
      }
    }
    return n;
  };
  const counts = await Promise.all(Array.from({ length: callers }, caller));
  const elapsed = now() - start;
  return summarize(
    counts.reduce((a, b) => a + b, 0),
    elapsed,
    errors,
    latency,
    wait,
    order,
  );
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let state = seed >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const ms = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

function overloadScenario(kit: DriverKit, service: Service, url: string): Scenario {
  const name = `${kit.db}-overload`;
  return {
    name,
    title: `${CALLERS} callers on max ${MAX}: SELECT 1 and a 2 ms sleep, latency / wait / fairness on ${service.name}`,
    service,
    async run(options: BenchOptions): Promise<ScenarioResult> {
      const reps = options.quick ? 2 : REPS;
      const runMs = RUN_MS * options.timeScale;
      const counter = new ConnectCounter();
      const lp = kit.leasepool(url, { max: MAX, acquireTimeoutMs: 30_000 }, counter);
      const drv = kit.driverPool(url, MAX, new ConnectCounter());
      const tables: string[] = [];
      const budgets: BudgetResult[] = [];
      const extra: Record<string, unknown> = {};
      try {
        for (const [label, sql] of [
          ['SELECT 1', 'SELECT 1'],
          ['2 ms sleep', kit.sleepSql],
        ] as const) {
          const d = kit.driverName;
          const variants: Variant[] = [
            { name: 'leasepool withLease', baseline: `${d} check-out`, op: leaseOp(lp, sql) },
            { name: `${d} check-out`, op: driverOp(drv, sql) },
            { name: 'leasepool withTx', baseline: `${d} tx`, op: txOp(lp, sql) },
            { name: `${d} tx`, op: driverTxOp(drv, sql, kit.begin) },
          ];
          const runs = new Map<string, LatencySummary[]>(variants.map((v) => [v.name, []]));
          for (const v of variants) await timed(v.op, CALLERS, runMs / 2);
          for (let rep = 0; rep < reps; rep++) {
            for (const v of shuffled(variants, rep + 1)) {
              runs.get(v.name)?.push(await timed(v.op, CALLERS, runMs));
              process.stderr.write('.');
            }
          }
          process.stderr.write('\n');
          const rows: string[][] = [];
          const medians: Record<string, LatencySummary> = {};
          for (const v of variants) {
            const m = medianSummary(runs.get(v.name) ?? []);
            medians[v.name] = m;
            rows.push([
              v.name,
              fmtInt(m.opsPerSec),
              `${ms(m.latency.p50)} / ${ms(m.latency.p99)} / ${ms(m.latency.p999)} / ${ms(m.latency.max)}`,
              `${ms(m.wait.p50)} / ${ms(m.wait.p99)} / ${ms(m.wait.p999)} / ${ms(m.wait.max)}`,
              `${(m.outOfOrder * 100).toFixed(1)}%`,
              fmtInt(m.errors),
            ]);
          }
          tables.push(
            `${label}, ${CALLERS} callers, max ${MAX} (medians of ${reps} reps of ${runMs} ms; times in ms)\n` +
              renderTable(['variant', 'ops/s', 'latency p50 / p99 / p99.9 / max', 'wait p50 / p99 / p99.9 / max', 'out-of-order grants', 'errors'], rows),
          );
          extra[label] = { medians, runs: Object.fromEntries(runs) };
          for (const v of variants) {
            if (v.baseline === undefined) continue;
            const a = runs.get(v.name) ?? [];
            const b = runs.get(v.baseline) ?? [];
            const paired = (f: (s: LatencySummary) => number): number[] => a.map((s, i) => f(s) / f(b[i] as LatencySummary));
            const what = `${label}: ${v.name} / ${v.baseline}`;
            const base = { variant: v.name, baseline: v.baseline, at: CALLERS } as const;
            budgets.push(judgeRatios({ ...base, metric: 'throughput', limit: 0.95, note: label }, paired((s) => s.opsPerSec), what, 'ops/s'));
            budgets.push(judgeRatios({ ...base, metric: 'time', limit: 1, note: `${label} p99 wait` }, paired((s) => s.wait.p99), what, 'p99 wait'));
            budgets.push(judgeRatios({ ...base, metric: 'time', limit: 1, note: `${label} max wait` }, paired((s) => s.wait.max), what, 'max wait'));
          }
        }
      } finally {
        await lp.close();
        await drv.end();
      }
      return { tables, budgets, checks: [{ label: 'leasepool never above max', ok: counter.opened <= MAX, detail: `${counter.opened} connections opened in all, max ${MAX}` }], extra };
    },
  };
}

export const pgOverload = overloadScenario(pgKit, pgService, process.env['PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test');
export const mysqlOverload = overloadScenario(mysqlKit, mysqlService, process.env['MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/test');
