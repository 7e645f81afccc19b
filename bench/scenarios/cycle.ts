/**
 * `cycle`: the pool's own overhead. Acquire → release on a dummy connection (the fake adapter,
 * no I/O), pool max 10, 1 and 64 callers, against the pools people would otherwise use.
 *
 * Peer settings: raw generic-pool runs with `fifo: true`, generic-pool's default and what leasepool
 * uses underneath (src/pool.ts passes no `fifo`), so both rotate through idle resources the same
 * way; tarn (always FIFO) and the minimal pool (LIFO array) run with their defaults. The peers'
 * release is not awaited (that is how their users write it); leasepool's is, because `withLease`
 * resolves only once the connection is back, and `await using` awaits `release()`.
 *
 * Every variant here runs in a process where leasepool has run a scope: on Node < 22 its
 * AsyncLocalStorage installs promise hooks for the whole process, which roughly doubles the cost
 * of every promise, the peers' included. A last table measures generic-pool and the floor in a
 * child process that never loads leasepool, for the cost an application without leasepool pays.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as genericPool from 'generic-pool';
import { Pool as TarnPool } from 'tarn';
import { fmtInt, renderTable, runThroughput, type Budget, type VariantResult } from '../lib/harness';
import { MinimalPool } from '../lib/minimal-pool';
import type { Scenario } from '../lib/scenario';
import { fakeAdapterModule, leasepool } from '../lib/subject';

const MAX = 10;
const CONCURRENCIES = [1, 64] as const;
const noop = async (): Promise<void> => {};
const RESOLVED = Promise.resolve();

interface Dummy {
  readonly id: number;
}
let nextDummy = 1;
const dummy = (): Dummy => ({ id: nextDummy++ });

export const cycle: Scenario = {
  name: 'cycle',
  title: 'Pure pool cycle: acquire → release, fake adapter, no I/O, max 10',
  async run(options) {
    const { createPool } = leasepool();
    const { fakeAdapter } = fakeAdapterModule();
    const budgets: Budget[] = [];
    for (const at of CONCURRENCIES) {
      budgets.push({ variant: 'withLease', baseline: 'generic-pool', at, metric: 'time', limit: 2.5, note: 'leasepool scope vs raw generic-pool' });
      budgets.push({ variant: 'withLease+leakDetect', baseline: 'withLease', at, metric: 'time', limit: 3, note: '"Every lease ends": leak detection at its defaults' });
    }
    const out = await runThroughput({
      concurrencies: CONCURRENCIES,
      baseline: 'generic-pool',
      ratioMetric: 'time',
      durationMs: 300 * options.timeScale,
      warmupMs: 150 * options.timeScale,
      checkEvery: 32,
      reps: options.reps,
      progress: true,
      budgets,
      variants: [
        {
          name: 'withLease',
          open() {
            const pool = createPool(fakeAdapter({ recordStatements: false }), { max: MAX, leakDetectionMs: 0 });
            return { op: () => pool.withLease(noop), close: async () => void (await pool.close()) };
          },
        },
        {
          name: 'acquire+release',
          open() {
            const pool = createPool(fakeAdapter({ recordStatements: false }), { max: MAX, leakDetectionMs: 0 });
            return {
              async op() {
                const lease = await pool.acquire();
                await lease.release();
              },
              close: async () => void (await pool.close()),
            };
          },
        },
        {
          name: 'withLease+leakDetect',
          open() {
            // Defaults: leakDetectionMs 30 000, at most leakStacksPerSecond (100) acquire stacks a second.
            const pool = createPool(fakeAdapter({ recordStatements: false }), { max: MAX });
            return { op: () => pool.withLease(noop), close: async () => void (await pool.close()) };
          },
        },
        {
          name: 'withLease+everyStack',
          open() {
            // The worst case of leak detection, informational (no budget: the defaults are what the
            // budget holds): every acquire captures its 5-frame stack. A capture costs V8 about
            // 34 000 instructions here however few frames it keeps, most of it rebuilding the
            // inlined frames of optimized code (TranslatedState), i.e. 2.5-3.5 µs: 2-4x a lease.
            // That is why leakStacksPerSecond samples.
            const pool = createPool(fakeAdapter({ recordStatements: false }), { max: MAX, leakStacksPerSecond: Infinity });
            return { op: () => pool.withLease(noop), close: async () => void (await pool.close()) };
          },
        },
        {
          name: 'generic-pool',
          open() {
            const gp = genericPool.createPool<Dummy>({ create: async () => dummy(), destroy: async () => undefined }, { max: MAX, min: 0, fifo: true });
            return {
              async op() {
                const r = await gp.acquire();
                void gp.release(r);
              },
              close: async () => {
                await gp.drain();
                await gp.clear();
              },
            };
          },
        },
        {
          name: 'tarn',
          open() {
            const pool = new TarnPool<Dummy>({ create: async () => dummy(), destroy: () => undefined, min: 0, max: MAX });
            return {
              async op() {
                const r = await pool.acquire().promise;
                pool.release(r);
              },
              close: async () => void (await pool.destroy()),
            };
          },
        },
        {
          name: 'minimal',
          open() {
            const pool = new MinimalPool<Dummy>(Array.from({ length: MAX }, dummy));
            return {
              async op() {
                const r = await pool.acquire();
                pool.release(r);
              },
            };
          },
        },
        {
          name: 'floor',
          open: () => ({ op: () => RESOLVED }),
        },
      ],
    });
    const isolated = await measureIsolatedPeers(options.reps, options.timeScale);
    const tables = [...out.tables, isolatedTable(out.results, isolated)];
    return { tables, budgets: out.budgets, checks: [], results: out.results, extra: { isolatedPeers: isolated } };
  },
};

/** generic-pool and the floor in a child process that never loads leasepool (see lib/isolated-peers.ts). */
async function measureIsolatedPeers(reps: number, timeScale: number): Promise<VariantResult[]> {
  const script = path.join(__dirname, '..', 'lib', 'isolated-peers.ts');
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--import', 'tsx', script, String(reps), String(timeScale)], {
    cwd: path.join(__dirname, '..', '..'),
  });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '[]') as VariantResult[];
}

function isolatedTable(here: readonly VariantResult[], isolated: readonly VariantResult[]): string {
  const rows: string[][] = [];
  for (const c of CONCURRENCIES) {
    const gp = isolated.find((r) => r.variant === 'generic-pool' && r.concurrency === c);
    const floor = isolated.find((r) => r.variant === 'floor' && r.concurrency === c);
    const lease = here.find((r) => r.variant === 'withLease' && r.concurrency === c);
    if (gp === undefined || floor === undefined || lease === undefined) continue;
    rows.push([String(c), `${fmtInt(floor.median.nsPerOp)} ns`, `${fmtInt(gp.median.nsPerOp)} ns`, `${(lease.median.nsPerOp / gp.median.nsPerOp).toFixed(2)}x`]);
  }
  return (
    'without leasepool in the process (no AsyncLocalStorage promise hooks; informational, not a budget)\n' +
    renderTable(['callers', 'floor', 'generic-pool', 'withLease here ÷ generic-pool there'], rows)
  );
}
