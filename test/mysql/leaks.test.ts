/**
 * Leak detection and GC-found leases on a real MariaDB/MySQL (mysql2 adapter): one report per
 * leaked lease naming the acquire line of this file, the "returned" report, the defer-in-a-loop
 * leak, and a dropped lease reclaimed after gc(). Table: `mysql_leaks_rows_<pid>`.
 */
import type { Connection } from 'mysql2/promise';
import { Registry } from 'prom-client';
import { mysqlAdapter } from '../../adapters/mysql2';
import { MYSQL_URL, mysqlRowsTable } from '../helpers/mysql-rows-table';
import { createPool, type Lease, type LeakEvent, type LeakReturnedEvent, type Pool, type PoolOptions, type ReclaimEvent } from '../../src';
import { captureLogger, delay, metric, siteOf, topSite, waitFor, type LogEntry } from '../helpers/lifecycle';

const db = mysqlRowsTable('leaks');
const TABLE = db.table;
const LEAK_MS = 200;
const gc = (globalThis as { gc?: () => void }).gc;

beforeAll(async () => {
  if (typeof gc !== 'function') throw new Error('global.gc is missing: run jest with node --expose-gc (as npm test does)');
});

interface Setup {
  pool: Pool<Connection>;
  logs: LogEntry[];
  registry: Registry;
  leaks: LeakEvent[];
  returned: LeakReturnedEvent[];
  reclaims: ReclaimEvent[];
}

function setup(options: PoolOptions = {}): Setup {
  const { logger, entries } = captureLogger();
  const registry = new Registry();
  const pool = createPool(mysqlAdapter(MYSQL_URL), { name: 'mysql_leaks', max: 6, leakDetectionMs: LEAK_MS, logger, metrics: { registry }, ...options });
  db.track(pool);
  const leaks: LeakEvent[] = [];
  const returned: LeakReturnedEvent[] = [];
  const reclaims: ReclaimEvent[] = [];
  pool.on('leak', (e) => leaks.push(e));
  pool.on('leakReturned', (e) => returned.push(e));
  pool.on('reclaim', (e) => reclaims.push(e));
  return { pool, logs: entries, registry, leaks, returned, reclaims };
}

function internalFrames(stack: string | undefined): string[] {
  return (stack ?? '').split('\n').filter((line) => /[\\/](src|adapters)[\\/][\w-]+\.ts/.test(line));
}

async function rowsTagged(tag: string): Promise<number> {
  const [rows] = await db.admin.query(`SELECT COUNT(*) AS n FROM ${TABLE} WHERE tag = ?`, [tag]);
  return Number((rows as { n: number }[])[0]?.n);
}

/** Acquire and drop the handle, in its own function so no stack slot of the test keeps it alive. */
async function acquireAndDrop(pool: Pool<Connection>, tag: string): Promise<{ id: number; site: string; threadId: number }> {
  const here = new Error(); const lease = await pool.acquire();
  await lease.conn.query('START TRANSACTION');
  await lease.conn.query(`INSERT INTO ${TABLE} (tag) VALUES (?)`, [tag]);
  return { id: lease.id, site: siteOf(here), threadId: lease.conn.threadId };
}

describe('leak detection by lease age (mysql)', () => {
  test('a lease held past leakDetectionMs is reported exactly once, with the acquire line of this file; its return is reported', async () => {
    const { pool, logs, registry, leaks, returned } = setup();
    const here = new Error(); const lease = await pool.acquire();
    await lease.conn.query('SELECT 1');

    await waitFor('the leak is reported', () => leaks.length > 0, 3_000);
    await delay(LEAK_MS * 2);
    expect(leaks).toHaveLength(1);
    const report = leaks[0] as LeakEvent;
    expect(report).toEqual({ id: lease.id, ageMs: expect.any(Number), inTransaction: false, stack: expect.any(String) });
    expect(report.ageMs).toBeGreaterThanOrEqual(LEAK_MS);
    expect(topSite(report.stack)).toBe(siteOf(here));
    expect(internalFrames(report.stack)).toEqual([]);
    const warnings = logs.filter((e) => e.level === 'warn' && e.msg.includes(`lease #${lease.id} held for`));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toContain(report.stack as string);
    expect(await metric(registry, 'leasepool_leaks_detected_total', { pool: 'mysql_leaks' })).toBe(1);

    await lease.release();
    expect(returned).toEqual([{ id: lease.id, heldMs: expect.any(Number) }]);
    expect(logs.filter((e) => e.level === 'warn' && /was returned after \d+ ms$/.test(e.msg))).toHaveLength(1);
  });

  test("Go's defer-in-a-loop: five acquires without release give five reports and activeLeases() lists them", async () => {
    const { pool, leaks } = setup();
    const held: Lease<Connection>[] = [];
    let loopSite = '';
    async function exportBatches(batches: number[]): Promise<void> {
      for (const batch of batches) {
        const here = new Error(); const lease = await pool.acquire();
        loopSite = siteOf(here);
        held.push(lease);
        await lease.conn.query('SELECT ? AS batch', [batch]);
      }
    }
    await exportBatches([1, 2, 3, 4, 5]);
    await (held[1] as Lease<Connection>).conn.query('START TRANSACTION');

    await waitFor('five leaks are reported', () => leaks.length >= 5, 3_000);
    await delay(LEAK_MS);
    expect(leaks.map((l) => l.id)).toEqual(held.map((l) => l.id));
    for (const report of leaks) expect(topSite(report.stack)).toBe(loopSite);
    const active = pool.activeLeases();
    expect(active.map((a) => a.id)).toEqual(held.map((l) => l.id));
    for (const info of active) {
      expect(info.ageMs).toBeGreaterThanOrEqual(LEAK_MS);
      expect(topSite(info.stack)).toBe(loopSite);
      expect(info.inTransaction).toBe(info.id === (held[1] as Lease<Connection>).id);
    }
    for (const lease of held) await lease.release();
    expect(pool.activeLeases()).toEqual([]);
  });
});

describe('leases found by the garbage collector (mysql)', () => {
  test('a lease dropped inside a transaction is reclaimed after gc(): counted, reported with its stack, rolled back, slot free', async () => {
    const { pool, registry, reclaims } = setup({ max: 1, acquireTimeoutMs: 2_000 });
    const dropped = await acquireAndDrop(pool, 'dropped-in-tx');
    for (let round = 0; round < 200 && reclaims.length === 0; round++) {
      (gc as () => void)();
      await new Promise(setImmediate);
    }
    expect(reclaims).toHaveLength(1);
    expect(reclaims[0]).toMatchObject({ id: dropped.id, kind: 'gc_reclaimed', inTransaction: true });
    expect(topSite(reclaims[0]?.stack)).toBe(dropped.site);
    expect(await metric(registry, 'leasepool_recoveries_total', { kind: 'gc_reclaimed' })).toBe(1);
    await waitFor('the slot is free', () => pool.stats().active === 0);
    const next = await pool.acquire({ timeoutMs: 2_000 });
    expect(next.conn.threadId).not.toBe(dropped.threadId);
    await next.release();
    await waitFor('the dropped connection is gone on the server', async () => {
      const [rows] = await db.admin.query('SELECT 1 FROM information_schema.processlist WHERE id = ?', [dropped.threadId]);
      return (rows as unknown[]).length === 0;
    });
    expect(await rowsTagged('dropped-in-tx')).toBe(0);
  });
});

describe("mysql2's trace on lease.conn", () => {
  test("a failed statement's error carries the caller's line, as mysql2's promise API gives it", async () => {
    const { pool } = setup({ leakDetectionMs: 0 });
    const here = new Error(); const err = (await pool.withLease((conn) => conn.query('SELEC 1')).catch((e: unknown) => e)) as Error & { errno?: number };
    expect(err.errno).toBe(1064);
    expect(err.stack?.split('\n')[0]).toBe(`Error: ${err.message}`);
    expect(topSite(err.stack)).toBe(siteOf(here));
    const [rows] = await pool.withLease((conn) => conn.execute('SELECT ? AS v', [7]));
    expect(rows).toEqual([{ v: 7 }]);
  });

  test('with trace: false no stack is captured for it: the error keeps the driver\'s own frames', async () => {
    const pool = createPool(mysqlAdapter({ uri: MYSQL_URL, trace: false }), { max: 1, leakDetectionMs: 0, metrics: false, logger: captureLogger().logger });
    try {
      const here = new Error(); const err = (await pool.withLease((conn) => conn.query('SELEC 1')).catch((e: unknown) => e)) as Error & { errno?: number };
      expect(err.errno).toBe(1064);
      expect(topSite(err.stack)).not.toBe(siteOf(here));
    } finally {
      await pool.close();
    }
  });
});
