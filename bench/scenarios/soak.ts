/**
 * `soak`: 100 000 `withLease` calls on a pool of max 2 (fake adapter) must leave nothing behind:
 * afterwards at most 2 connections, no active lease, and the heap (after full GCs) back where it
 * was. Four callers share the two connections, so the waiting path runs too; the body sends a
 * statement through the guarded connection, and one call in 100 throws (the error path releases
 * too). Default pool options: leak detection on, an acquire stack kept per lease.
 */
import { collect, fmtInt, renderTable } from '../lib/harness';
import type { Check, Scenario } from '../lib/scenario';
import { fakeAdapterModule, leasepool } from '../lib/subject';

const CALLS = 100_000;
const CALLERS = 4;
const WARMUP_CALLS = 5_000;
const MIB = 1024 * 1024;

class Planned extends Error {}

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    collect(2);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().heapUsed;
}

/** How many bodies `run(total)` makes throw: caller k throws where (i + k) % 100 === 99, i < total / CALLERS. */
function planned(total: number): number {
  let count = 0;
  for (let k = 0; k < CALLERS; k++) count += Math.floor((total / CALLERS + k) / 100);
  return count;
}

export const soak: Scenario = {
  name: 'soak',
  title: `Soak: ${fmtInt(CALLS)} withLease calls, ${CALLERS} callers, pool max 2`,
  async run(options) {
    const { createPool } = leasepool();
    const { fakeAdapter } = fakeAdapterModule();
    const calls = options.quick ? CALLS / 4 : CALLS;
    const adapter = fakeAdapter({ recordStatements: false });
    const pool = createPool(adapter, { max: 2 });
    let failures = 0;
    let unexpected: unknown;
    const loop = async (n: number, offset: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        try {
          await pool.withLease(async (conn) => {
            await conn.query('SELECT 1');
            if ((i + offset) % 100 === 99) throw new Planned('planned');
          });
        } catch (err) {
          if (err instanceof Planned) failures++;
          else unexpected ??= err;
        }
      }
    };
    const run = async (total: number): Promise<void> => {
      await Promise.all(Array.from({ length: CALLERS }, (_, k) => loop(total / CALLERS, k)));
    };

    await run(WARMUP_CALLS); // JIT, connections, and every lazily created structure
    const heapBefore = await settledHeap();
    const statementsBefore = adapter.db.statements;
    const t0 = performance.now();
    failures = 0;
    await run(calls);
    const elapsedMs = performance.now() - t0;
    const stats = pool.stats();
    const heapAfter = await settledHeap();
    const statements = adapter.db.statements - statementsBefore;
    const openConnections = adapter.db.open.length;
    await pool.close({ timeoutMs: 1_000 });

    const growth = heapAfter - heapBefore;
    const checks: Check[] = [
      { label: 'no unexpected error', ok: unexpected === undefined, detail: unexpected === undefined ? 'none' : String(unexpected) },
      { label: 'every call ran its statement', ok: statements === calls, detail: `${fmtInt(statements)} statements for ${fmtInt(calls)} calls` },
      { label: 'thrown bodies rejected', ok: failures === planned(calls), detail: `${fmtInt(failures)} of ${fmtInt(planned(calls))}` },
      { label: 'stats().size <= 2', ok: stats.size <= 2 && openConnections <= 2, detail: `size ${stats.size}, open connections ${openConnections}` },
      { label: 'stats().active === 0', ok: stats.active === 0 && stats.pending === 0, detail: `active ${stats.active}, pending ${stats.pending}` },
      {
        label: 'heap back to its level (< 1 MiB or < 5% growth)',
        ok: growth < MIB || growth < heapBefore * 0.05,
        detail: `${(heapBefore / MIB).toFixed(2)} MiB → ${(heapAfter / MIB).toFixed(2)} MiB (${growth >= 0 ? '+' : ''}${fmtInt(growth / 1024)} KiB)`,
      },
    ];
    const table = renderTable(
      ['calls', 'time', 'µs/call', 'heap before', 'heap after', 'growth'],
      [[fmtInt(calls), `${(elapsedMs / 1000).toFixed(2)} s`, ((elapsedMs * 1000) / calls).toFixed(2), `${(heapBefore / MIB).toFixed(2)} MiB`, `${(heapAfter / MIB).toFixed(2)} MiB`, `${fmtInt(growth / 1024)} KiB`]],
    );
    return {
      tables: [table],
      budgets: [],
      checks,
      extra: { calls, callers: CALLERS, elapsedMs, heapBefore, heapAfter, stats, statements, failures },
    };
  },
};
