/**
 * Leases dropped without release() are found by the garbage collector (FinalizationRegistry) and
 * reclaimed on a real PostgreSQL: counted as gc_reclaimed, reported with the acquire stack, the
 * pool slot free again, an open transaction rolled back. Needs `node --expose-gc` (npm test
 * passes it). Table: `pg_gc_rows_<pid>`.
 */
import { Client } from 'pg';
import { Registry } from 'prom-client';
import { pgAdapter } from '../../adapters/pg';
import { createPool, type Pool, type ReclaimEvent } from '../../src';
import { captureLogger, metric, siteOf, topSite, waitFor, type LogEntry } from '../helpers/lifecycle';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
// Suffixed with the worker's pid: another jest run on this machine (same file) never drops our table.
const TABLE = `pg_gc_rows_${process.pid}`;

const gc = (globalThis as { gc?: () => void }).gc;

let admin: Client;
const pools: Pool<Client>[] = [];

beforeAll(async () => {
  if (typeof gc !== 'function') throw new Error('global.gc is missing: run jest with node --expose-gc (as npm test does)');
  admin = new Client(PG_URL);
  await admin.connect();
  await admin.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await admin.query(`CREATE TABLE ${TABLE} (id serial PRIMARY KEY, tag text NOT NULL)`);
});

afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await admin.end();
});

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 100 })));
});

function setup(): { pool: Pool<Client>; registry: Registry; logs: LogEntry[]; reclaims: ReclaimEvent[] } {
  const { logger, entries } = captureLogger();
  const registry = new Registry();
  // leakDetectionMs is on (the default 30 s, far beyond this test): it is what captures the acquire stack.
  const pool = createPool(pgAdapter(PG_URL), { name: 'pg_gc', max: 1, logger, metrics: { registry }, acquireTimeoutMs: 2_000 });
  pools.push(pool);
  const reclaims: ReclaimEvent[] = [];
  pool.on('reclaim', (e) => reclaims.push(e));
  return { pool, registry, logs: entries, reclaims };
}

/**
 * Acquire and drop the handle. A separate function, so that once it returns no stack slot of
 * the test keeps the lease alive; only plain values come back.
 */
async function acquireAndDrop(pool: Pool<Client>, tag?: string): Promise<{ id: number; site: string; pid: number }> {
  const here = new Error(); const lease = await pool.acquire();
  const { rows } = await lease.conn.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  if (tag !== undefined) {
    await lease.conn.query('BEGIN');
    await lease.conn.query(`INSERT INTO ${TABLE} (tag) VALUES ($1)`, [tag]);
  }
  return { id: lease.id, site: siteOf(here), pid: (rows[0] as { pid: number }).pid };
}

/** gc() and give finalizers a turn, until `done` (bounded). */
async function collectUntil(done: () => boolean): Promise<number> {
  for (let round = 1; round <= 200; round++) {
    (gc as () => void)();
    await new Promise(setImmediate);
    if (done()) return round;
  }
  throw new Error('the dropped lease was not reclaimed after 200 gc rounds');
}

describe('leases found by the garbage collector (pg)', () => {
  test('a lease whose only reference is dropped is reclaimed after gc(): counted, reported with its acquire stack, slot free', async () => {
    const { pool, registry, logs, reclaims } = setup();
    const dropped = await acquireAndDrop(pool);
    expect(pool.stats().active).toBe(1);

    await collectUntil(() => reclaims.length > 0);
    expect(reclaims).toHaveLength(1);
    const report = reclaims[0] as ReclaimEvent;
    expect(report).toMatchObject({ id: dropped.id, kind: 'gc_reclaimed', inTransaction: false });
    expect(report.reason.message).toContain(`lease #${dropped.id} was garbage-collected without release()`);
    expect(topSite(report.stack)).toBe(dropped.site);
    const warning = logs.find((e) => e.level === 'warn' && e.msg.includes(`lease #${dropped.id} reclaimed (gc_reclaimed)`));
    expect(warning?.msg).toContain(report.stack as string);
    expect(await metric(registry, 'leasepool_recoveries_total', { kind: 'gc_reclaimed' })).toBe(1);

    await waitFor('the reclaimed connection leaves the pool', () => pool.stats().active === 0);
    expect(pool.activeLeases()).toEqual([]);
    // max is 1: this acquire succeeds only because the slot came back.
    const next = await pool.acquire({ timeoutMs: 2_000 });
    const { rows } = await next.conn.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    expect(rows[0]?.pid).not.toBe(dropped.pid); // the dropped connection was destroyed, not reused
    await next.release();
    expect(await metric(registry, 'leasepool_recoveries_total', { kind: 'gc_reclaimed' })).toBe(1);
  });

  test('a lease dropped inside a transaction: the reclaim rolls it back and the backend goes away', async () => {
    const { pool, reclaims } = setup();
    const tag = 'dropped-in-tx';
    const dropped = await acquireAndDrop(pool, tag);

    await collectUntil(() => reclaims.length > 0);
    expect(reclaims[0]).toMatchObject({ id: dropped.id, kind: 'gc_reclaimed', inTransaction: true });
    await waitFor('the backend of the dropped lease is gone', async () => {
      const { rows } = await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [dropped.pid]);
      return rows.length === 0;
    });
    const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${TABLE} WHERE tag = $1`, [tag]);
    expect(rows[0]?.n).toBe(0);
    await pool.withLease((conn) => conn.query('SELECT 1'), { acquireTimeoutMs: 2_000 });
  });

  test('a released lease that is later collected is not reclaimed again', async () => {
    const { pool, registry, reclaims } = setup();
    await (async () => {
      const lease = await pool.acquire();
      await lease.release();
    })();
    for (let i = 0; i < 20; i++) {
      (gc as () => void)();
      await new Promise(setImmediate);
    }
    expect(reclaims).toEqual([]);
    expect(await metric(registry, 'leasepool_recoveries_total', { kind: 'gc_reclaimed' })).toBe(0);
    expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
  });
});
