/**
 * `pool.close({ timeoutMs })` on a real MariaDB/MySQL: a leaked lease is reclaimed at the
 * deadline (its transaction rolled back), a lease released during the wait counts as released,
 * a killed connection or a blackholed connect never holds close past its deadline.
 * Table: `mysql_shutdown_rows_<pid>`.
 */
import type { Connection } from 'mysql2/promise';
import { Registry } from 'prom-client';
import { mysqlAdapter } from '../../adapters/mysql2';
import { MYSQL_URL, mysqlRowsTable } from '../helpers/mysql-rows-table';
import { createPool, type Pool, type PoolOptions } from '../../src';
import { blackhole, captureLogger, metric, waitFor, type LogEntry } from '../helpers/lifecycle';

const db = mysqlRowsTable('shutdown');
const TABLE = db.table;

function setup(options: PoolOptions = {}): { pool: Pool<Connection>; registry: Registry; logs: LogEntry[] } {
  const { logger, entries } = captureLogger();
  const registry = new Registry();
  const pool = createPool(mysqlAdapter(MYSQL_URL), { name: 'mysql_shutdown', max: 2, logger, metrics: { registry }, ...options });
  db.track(pool);
  return { pool, registry, logs: entries };
}

async function rowsTagged(tag: string): Promise<number> {
  const [rows] = await db.admin.query(`SELECT COUNT(*) AS n FROM ${TABLE} WHERE tag = ?`, [tag]);
  return Number((rows as { n: number }[])[0]?.n);
}

async function gone(threadId: number): Promise<boolean> {
  const [rows] = await db.admin.query('SELECT 1 FROM information_schema.processlist WHERE id = ?', [threadId]);
  return (rows as unknown[]).length === 0;
}

describe('pool.close({ timeoutMs }) (mysql)', () => {
  test('a leaked lease (mid-transaction) is reclaimed at the deadline; a lease released during the wait counts as released; second close is the same promise', async () => {
    const { pool, registry } = setup();
    const leaked = await pool.acquire();
    const leakedConn = leaked.conn;
    const threadId = leakedConn.threadId;
    await leakedConn.query('START TRANSACTION');
    await leakedConn.query(`INSERT INTO ${TABLE} (tag) VALUES ('leaked-at-close')`);
    const polite = await pool.acquire();

    const startedAt = Date.now();
    const closing = pool.close({ timeoutMs: 800 });
    expect(pool.close()).toBe(closing);
    await expect(pool.acquire()).rejects.toMatchObject({ code: 'POOL_CLOSED' });
    await polite.release();
    const summary = await closing;
    const elapsed = Date.now() - startedAt;

    expect(summary).toEqual({ released: 1, reclaimed: 1 });
    expect(elapsed).toBeGreaterThanOrEqual(780);
    expect(elapsed).toBeLessThan(800 + 1_000);
    expect(leaked.state).toBe('revoked');
    let useError: unknown;
    try {
      void leakedConn.query('SELECT 1');
    } catch (err) {
      useError = err;
    }
    expect(useError).toMatchObject({ code: 'LEASE_REVOKED' });
    expect(await metric(registry, 'leasepool_recoveries_total', { kind: 'shutdown_reclaimed' })).toBe(1);
    await waitFor('the leaked connection is gone on the server', () => gone(threadId));
    expect(await rowsTagged('leaked-at-close')).toBe(0);
    await expect(pool.withTx((conn) => conn.query('SELECT 1'))).rejects.toMatchObject({ code: 'POOL_CLOSED' });
  });

  test('a leaked lease whose connection was KILLed on the server: close still meets its deadline', async () => {
    const { pool, logs } = setup();
    const leaked = await pool.acquire();
    const threadId = leaked.conn.threadId;
    await db.admin.query(`KILL ${Number(threadId)}`);
    await waitFor('the pool notices the dead leased connection', () => logs.some((e) => e.level === 'error' && e.msg.includes('while leased')));

    const startedAt = Date.now();
    const summary = await pool.close({ timeoutMs: 500 });
    expect(Date.now() - startedAt).toBeLessThan(500 + 1_000);
    expect(summary).toEqual({ released: 0, reclaimed: 1 });
    expect(pool.stats()).toMatchObject({ size: 0, active: 0 });
  });

  test('close while a connect is blackholed meets its deadline', async () => {
    const hole = await blackhole();
    try {
      const { logger } = captureLogger();
      const pool = createPool(mysqlAdapter({ host: '127.0.0.1', port: hole.port, user: 'root', database: 'test' }), {
        name: 'mysql_shutdown_blackhole',
        max: 1,
        connectTimeoutMs: 20_000,
        acquireTimeoutMs: 20_000,
        logger,
      });
      db.track(pool);
      const waiting = pool.acquire().then(
        () => undefined,
        (e: unknown) => e,
      );
      await waitFor('the connect reaches the blackhole', () => hole.sockets.length === 1);
      const startedAt = Date.now();
      expect(await pool.close({ timeoutMs: 300 })).toEqual({ released: 0, reclaimed: 0 });
      expect(Date.now() - startedAt).toBeLessThan(300 + 700);
      expect(await waiting).toMatchObject({ code: 'POOL_CLOSED' });
      await waitFor('the client drops the blackholed socket', () => hole.closed.size === 1, 2_000);
    } finally {
      await hole.close();
    }
  });
});
