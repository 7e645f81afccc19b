/**
 * Child process of the `cycle` scenario: generic-pool and the floor measured in a process where
 * leasepool was never loaded. On Node < 22 leasepool's AsyncLocalStorage installs promise hooks
 * for the whole process once a scope runs, and every promise pays for them — the peers measured
 * next to leasepool included. This run shows what they cost without that tax.
 * Prints one JSON line: VariantResult[].
 */
import * as genericPool from 'generic-pool';
import { runThroughput } from './harness';

async function main(): Promise<void> {
  const reps = Number(process.argv[2] ?? 5);
  const timeScale = Number(process.argv[3] ?? 1);
  const RESOLVED = Promise.resolve();
  const out = await runThroughput({
    concurrencies: [1, 64],
    baseline: 'generic-pool',
    ratioMetric: 'time',
    durationMs: 300 * timeScale,
    warmupMs: 150 * timeScale,
    checkEvery: 32,
    reps,
    budgets: [],
    variants: [
      {
        name: 'generic-pool',
        open() {
          let n = 0;
          const gp = genericPool.createPool({ create: async () => ({ id: n++ }), destroy: async () => undefined }, { max: 10, min: 0, fifo: true });
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
      { name: 'floor', open: () => ({ op: () => RESOLVED }) },
    ],
  });
  process.stdout.write(`${JSON.stringify(out.results)}\n`);
}

void main();
