/**
 * The soak: 1,000,000 leases on the in-memory adapter (default pool options: leak detection on,
 * so every lease keeps its acquire site), 4 concurrent callers on `max: 4`, every 100th body
 * throws. Afterwards (full GCs) the heap is back where it was, no lease is active, and at most
 * `max` connections are open.
 */
import { createPool } from '../../../src/index';
import { releaseProbe } from '../../../src/release';
import { fakeAdapter } from '../../helpers/fake-adapter';

export interface SoakReport {
  readonly leases: number;
  readonly thrown: number;
  readonly unexpected: number;
  readonly elapsedMs: number;
  readonly heapBeforeMiB: number;
  readonly heapAfterMiB: number;
  readonly growthKiB: number;
  readonly openConnections: number;
  /** Connections the release path handed back, and how many were not idle (must be 0). */
  readonly returned: number;
  readonly returnedInTransaction: number;
  readonly issues: readonly string[];
}

class Planned extends Error {}

const MiB = 1024 * 1024;

async function settledHeap(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 4; i++) {
    gc?.();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().heapUsed;
}

export async function soak(options: { leases?: number; callers?: number } = {}): Promise<SoakReport> {
  const leases = options.leases ?? 1_000_000;
  const callers = options.callers ?? 4;
  const max = 4;
  const adapter = fakeAdapter({ recordStatements: false });
  const pool = createPool(adapter, { max, logger: { warn: () => undefined, error: () => undefined } });
  let thrown = 0;
  let planned = 0;
  let unexpected = 0;
  const loop = async (n: number, offset: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      try {
        await pool.withLease(async (conn) => {
          await conn.query('SELECT 1');
          if ((i + offset) % 100 === 99) {
            planned++;
            throw new Planned('planned');
          }
        });
      } catch (err) {
        if (err instanceof Planned) thrown++;
        else unexpected++;
      }
    }
  };
  let returned = 0;
  let returnedInTransaction = 0;
  const probe = (a: { txStatus?(raw: object): string }, raw: object): void => {
    returned++;
    if ((a.txStatus?.(raw) ?? 'idle') !== 'idle') returnedInTransaction++;
  };
  // Every lease made exactly once: the first `total % callers` callers take one more.
  const run = (total: number): Promise<unknown> =>
    Promise.all(Array.from({ length: callers }, (_, k) => loop(Math.floor(total / callers) + (k < total % callers ? 1 : 0), k)));
  try {
    await run(20_000); // warm-up: JIT, connections, lazily built structures
    thrown = 0;
    planned = 0;
    unexpected = 0;
    const heapBefore = await settledHeap();
    const started = performance.now();
    releaseProbe.onReturn = probe;
    try {
      await run(leases);
    } finally {
      releaseProbe.onReturn = undefined;
    }
    const elapsedMs = performance.now() - started;
    const heapAfter = await settledHeap();
    const stats = pool.stats();
    const openConnections = adapter.db.open.length;
    const growth = heapAfter - heapBefore;
    const issues: string[] = [];
    if (unexpected > 0) issues.push(`${unexpected} leases failed unexpectedly`);
    if (thrown !== planned) issues.push(`${thrown} thrown bodies rejected, ${planned} planned`);
    if (stats.active !== 0 || stats.pending !== 0) issues.push(`after the soak: active ${stats.active}, pending ${stats.pending}`);
    if (openConnections > max) issues.push(`${openConnections} connections open (max ${max})`);
    if (returned !== leases || returnedInTransaction !== 0) issues.push(`${returned} connections returned (${returnedInTransaction} not idle) for ${leases} leases`);
    // "Within noise": under 1 MiB or 5% of the heap (a leak of one byte per lease would be ~1 MiB).
    if (growth > Math.max(MiB, heapBefore * 0.05)) issues.push(`heap grew by ${(growth / 1024).toFixed(0)} KiB over ${leases} leases`);
    return {
      leases,
      thrown,
      unexpected,
      elapsedMs: Math.round(elapsedMs),
      heapBeforeMiB: +(heapBefore / MiB).toFixed(2),
      heapAfterMiB: +(heapAfter / MiB).toFixed(2),
      growthKiB: Math.round(growth / 1024),
      openConnections,
      returned,
      returnedInTransaction,
      issues,
    };
  } finally {
    await pool.close({ timeoutMs: 1_000 });
  }
}
