/**
 * Leak detection by lease age on a real PostgreSQL: one report per leaked lease, with the stack of
 * the user's acquire call (this file, that line), and a second report when it comes back.
 * Tables: none (leases only run SELECT / BEGIN).
 */
import { Registry } from 'prom-client';
import { pgAdapter } from '../../adapters/pg';
import { createPool, type Lease, type LeakEvent, type LeakReturnedEvent, type Pool, type PoolOptions } from '../../src';
import { captureLogger, delay, metric, siteOf, topSite, waitFor, type LogEntry } from '../helpers/lifecycle';
import type { Client } from 'pg';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const LEAK_MS = 200;

interface Setup {
  pool: Pool<Client>;
  logs: LogEntry[];
  registry: Registry;
  leaks: LeakEvent[];
  returned: LeakReturnedEvent[];
}

const pools: Pool<Client>[] = [];

function setup(options: PoolOptions = {}): Setup {
  const { logger, entries } = captureLogger();
  const registry = new Registry();
  const pool = createPool(pgAdapter(PG_URL), { name: 'pg_leaks', max: 6, leakDetectionMs: LEAK_MS, logger, metrics: { registry }, ...options });
  pools.push(pool);
  const leaks: LeakEvent[] = [];
  const returned: LeakReturnedEvent[] = [];
  pool.on('leak', (e) => leaks.push(e));
  pool.on('leakReturned', (e) => returned.push(e));
  return { pool, logs: entries, registry, leaks, returned };
}

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 100 })));
});

/** Frames of a reported stack that belong to leasepool's own sources. */
function internalFrames(stack: string | undefined): string[] {
  return (stack ?? '').split('\n').filter((line) => /[\\/](src|adapters)[\\/][\w-]+\.ts/.test(line));
}

function leakWarnings(logs: LogEntry[], id: number): LogEntry[] {
  return logs.filter((e) => e.level === 'warn' && e.msg.includes(`lease #${id} held for`));
}

function returnWarnings(logs: LogEntry[], id: number): LogEntry[] {
  return logs.filter((e) => e.level === 'warn' && e.msg.includes(`lease #${id} was returned after`));
}

describe('leak detection by lease age (pg)', () => {
  test('a lease held past leakDetectionMs is reported exactly once, with the acquire line of this file; its return is reported', async () => {
    const { pool, logs, registry, leaks, returned } = setup();

    const here = new Error(); const lease = await pool.acquire(); // the line the report must name
    await lease.conn.query('SELECT 1');

    await waitFor('the leak is reported', () => leaks.length > 0, 3_000);
    // Several detector periods (leakDetectionMs/4 = 50 ms) later there is still exactly one report.
    await delay(LEAK_MS * 2);
    expect(leaks).toHaveLength(1);
    expect(leakWarnings(logs, lease.id)).toHaveLength(1);
    expect(await metric(registry, 'leasepool_leaks_detected_total', { pool: 'pg_leaks' })).toBe(1);

    const report = leaks[0] as LeakEvent;
    expect(report).toEqual({ id: lease.id, ageMs: expect.any(Number), inTransaction: false, stack: expect.any(String) });
    expect(report.ageMs).toBeGreaterThanOrEqual(LEAK_MS);
    // The detector runs every leakDetectionMs/4 (50 ms here), not every second: the report is prompt.
    expect(report.ageMs).toBeLessThan(LEAK_MS + LEAK_MS / 4 + 300);
    // The top frame is the user's acquire call (this file, that line), not leasepool's internals.
    expect(topSite(report.stack)).toBe(siteOf(here));
    expect(internalFrames(report.stack)).toEqual([]);

    const warning = leakWarnings(logs, lease.id)[0] as LogEntry;
    expect(warning.msg).toContain('possible leak');
    expect(warning.msg).toContain(`leakDetectionMs=${LEAK_MS}`);
    expect(warning.msg).toContain(report.stack as string);
    expect(warning.obj).toMatchObject({ pool: 'pg_leaks', leaseId: lease.id, inTransaction: false });

    expect(returned).toEqual([]);
    await lease.release();
    expect(returned).toEqual([{ id: lease.id, heldMs: expect.any(Number) }]);
    expect((returned[0] as LeakReturnedEvent).heldMs).toBeGreaterThanOrEqual(report.ageMs);
    const back = returnWarnings(logs, lease.id);
    expect(back).toHaveLength(1);
    expect((back[0] as LogEntry).msg).toMatch(new RegExp(`lease #${lease.id} was returned after ${(returned[0] as LeakReturnedEvent).heldMs} ms$`));
    expect(pool.activeLeases()).toEqual([]);
  });

  test('a short lease is never reported', async () => {
    const { pool, leaks, logs } = setup();
    for (let i = 0; i < 5; i++) await pool.withLease((conn) => conn.query('SELECT 1'));
    await delay(LEAK_MS * 2);
    expect(leaks).toEqual([]);
    expect(logs.filter((e) => e.level === 'warn')).toEqual([]);
  });

  test('withLease and withTx scopes held too long are reported at their own call lines; withTx says inTransaction', async () => {
    const { pool, leaks, returned } = setup();

    let scopeSite = '';
    let txSite = '';
    const scopeId = await (async () => {
      const here = new Error(); return pool.withLease(async (conn, lease) => { scopeSite = siteOf(here); await conn.query('SELECT 1'); await waitFor('the scope is reported', () => leaks.some((l) => l.id === lease.id), 3_000); return lease.id; });
    })();
    const txId = await (async () => {
      const here = new Error(); return pool.withTx(async (conn, tx) => { txSite = siteOf(here); await conn.query('SELECT 1'); await waitFor('the transaction is reported', () => leaks.some((l) => l.id === tx.lease.id), 3_000); return tx.lease.id; });
    })();

    const scopeReport = leaks.find((l) => l.id === scopeId) as LeakEvent;
    const txReport = leaks.find((l) => l.id === txId) as LeakEvent;
    expect(topSite(scopeReport.stack)).toBe(scopeSite);
    expect(topSite(txReport.stack)).toBe(txSite);
    expect(internalFrames(scopeReport.stack)).toEqual([]);
    expect(internalFrames(txReport.stack)).toEqual([]);
    expect(scopeReport.inTransaction).toBe(false);
    expect(txReport.inTransaction).toBe(true);
    expect(leaks).toHaveLength(2);
    // Both scopes ended on their own: both returns are reported.
    expect(returned.map((r) => r.id).sort()).toEqual([scopeId, txId].sort());
  });

  test("Go's defer-in-a-loop: five acquires without release give five reports, each with its stack, and activeLeases() lists them", async () => {
    const { pool, leaks, logs, registry } = setup();
    const held: Lease<Client>[] = [];
    let loopSite = '';

    // In Go, `defer rows.Close()` inside a loop runs only when the function returns: every
    // iteration holds one more connection. The same bug, spelled in TypeScript:
    async function exportBatches(batches: number[]): Promise<void> {
      for (const batch of batches) {
        const here = new Error(); const lease = await pool.acquire();
        loopSite = siteOf(here);
        held.push(lease); // "deferred" release that never comes while the loop runs
        await lease.conn.query('SELECT $1::int AS batch', [batch]);
      }
    }
    await exportBatches([1, 2, 3, 4, 5]);
    await (held[2] as Lease<Client>).conn.query('BEGIN');

    await waitFor('five leaks are reported', () => leaks.length >= 5, 3_000);
    await delay(LEAK_MS);
    expect(leaks).toHaveLength(5);
    const ids = held.map((l) => l.id);
    expect(leaks.map((l) => l.id)).toEqual(ids);
    for (const report of leaks) {
      expect(topSite(report.stack)).toBe(loopSite);
      expect(internalFrames(report.stack)).toEqual([]);
    }
    for (const id of ids) expect(leakWarnings(logs, id)).toHaveLength(1);

    const active = pool.activeLeases();
    expect(active.map((a) => a.id)).toEqual(ids); // oldest first
    for (const info of active) {
      expect(Object.keys(info).sort()).toEqual(['ageMs', 'id', 'inTransaction', 'stack']);
      expect(info.ageMs).toBeGreaterThanOrEqual(LEAK_MS);
      expect(topSite(info.stack)).toBe(loopSite);
      expect(info.inTransaction).toBe(info.id === (held[2] as Lease<Client>).id);
    }
    expect(pool.stats()).toMatchObject({ active: 5 });

    for (const lease of held) await lease.release(); // the open transaction is rolled back on release
    expect(pool.activeLeases()).toEqual([]);
    expect(logs.filter((e) => /lease #\d+ was returned after \d+ ms/.test(e.msg))).toHaveLength(5);
    expect(await metric(registry, 'leasepool_leaks_detected_total', { pool: 'pg_leaks' })).toBe(5);
  });

  test('leakDetectionMs: 0 turns detection off: no stack, no report', async () => {
    const { pool, leaks, logs } = setup({ leakDetectionMs: 0 });
    const lease = await pool.acquire();
    await delay(300);
    expect(leaks).toEqual([]);
    expect(pool.activeLeases()).toEqual([{ id: lease.id, ageMs: expect.any(Number), inTransaction: false, stack: undefined }]);
    await lease.release();
    expect(logs.filter((e) => e.level === 'warn')).toEqual([]);
  });
});
