/**
 * The lease inspector against a real MariaDB/MySQL, in headless Chromium (see
 * test/helpers/inspector-browser.ts for the scenario). Also the JSON on MySQL: the backend id is
 * the session's `CONNECTION_ID()`, the statement its text with its `?` placeholders, never the
 * values. Tables: none.
 */
import * as fs from 'node:fs';
import type { Connection } from 'mysql2/promise';
import { createPool as createCompatPool, mysqlAdapter } from '../../adapters/mysql2';
import { attachInspector, createPool, inspectLeases, type Pool } from '../../src';
import { runBrowserScenario, until } from '../helpers/inspector-browser';

const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const PARAM = 'param-value-Mq77';
const LEAK_MS = 300;

const pools: Pool<Connection>[] = [];
function makePool(): Pool<Connection> {
  const pool = createPool(mysqlAdapter(MYSQL_URL), {
    name: 'mysql_inspector',
    max: 3,
    leakDetectionMs: LEAK_MS,
    leakStacksPerSecond: Infinity,
    metrics: false,
    logger: { warn() {}, error() {} },
  });
  pools.push(pool);
  return pool;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 2_000 })));
});

async function connectionId(conn: Connection): Promise<number> {
  const [rows] = await conn.query('SELECT CONNECTION_ID() AS id');
  return Number((rows as Array<{ id: number | string }>)[0]!.id);
}

test('the JSON on MySQL: backend thread id, statement text without its parameter', async () => {
  const pool = makePool();
  const detach = attachInspector(pool);
  try {
    await pool.withTx(async (conn, tx) => {
      const id = await connectionId(conn);
      const running = conn.query('SELECT SLEEP(0.3), ? AS marker', [PARAM]);
      const snap = inspectLeases(pool);
      const lease = snap.pools[0]!.leases.find((l) => l.id === tx.lease.id)!;
      expect(lease).toMatchObject({ state: 'running', transaction: 'open', txDepth: 1, backendId: id, statement: { sql: 'SELECT SLEEP(0.3), ? AS marker' } });
      expect(JSON.stringify(snap)).not.toContain(PARAM);
      await running;
    });
  } finally {
    detach();
  }
});

test("the drop-in pool's query and its callback pool's show their statement text too, never the parameter", async () => {
  const facade = createCompatPool({ uri: MYSQL_URL, connectionLimit: 2, leasepool: { name: 'mysql_inspector_facade', metrics: false } });
  const detach = attachInspector(facade.leasepool);
  try {
    const running = facade.query('SELECT SLEEP(0.3), ? AS marker', [PARAM]);
    await until('the statement shows', () => inspectLeases(facade.leasepool).pools[0]!.leases.some((l) => l.statement !== null));
    let snap = inspectLeases(facade.leasepool);
    expect(snap.pools[0]!.leases[0]).toMatchObject({ state: 'running', statement: { sql: 'SELECT SLEEP(0.3), ? AS marker' } });
    expect(JSON.stringify(snap)).not.toContain(PARAM);
    await running;
    const viaCallback = new Promise<void>((resolve, reject) => facade.pool.query('SELECT SLEEP(0.3), ? AS other', [PARAM], (err) => (err ? reject(err) : resolve())));
    await until('the callback statement shows', () => inspectLeases(facade.leasepool).pools[0]!.leases.some((l) => l.statement !== null));
    snap = inspectLeases(facade.leasepool);
    expect(snap.pools[0]!.leases[0]!.statement?.sql).toBe('SELECT SLEEP(0.3), ? AS other');
    expect(JSON.stringify(snap)).not.toContain(PARAM);
    await viaCallback;
  } finally {
    detach();
    await facade.end();
  }
});

test('headless Chromium: a lease in a transaction running SLEEP() appears, ticks, goes; a leaked one is reclaimed from the page', async () => {
  const pool = makePool();
  const shot = await runBrowserScenario({
    pool,
    sleepSql: (seconds) => ({ sql: `SELECT SLEEP(${seconds}), ? AS marker`, params: [PARAM] }),
    backendId: connectionId,
    query: (conn, sql, params) => conn.query(sql, params),
    secrets: [PARAM],
    screenshot: 'inspector-mysql.png',
    leakDetectionMs: LEAK_MS,
  });
  expect(fs.statSync(shot).size).toBeGreaterThan(10_000);
  await until('the pool is back to no active lease', () => pool.stats().active === 0);
}, 90_000);
