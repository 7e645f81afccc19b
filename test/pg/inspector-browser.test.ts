/**
 * The lease inspector against a real PostgreSQL, in headless Chromium (see
 * test/helpers/inspector-browser.ts for the scenario). Also the JSON on PostgreSQL: the backend id
 * is the session's `pg_backend_pid()`, the statement its text, the connection string's password
 * nowhere. Tables: none.
 */
import * as fs from 'node:fs';
import type { Client } from 'pg';
import { pgAdapter, Pool as PgCompatPool } from '../../adapters/pg';
import { createPool, inspectLeases, attachInspector, type Pool } from '../../src';
import { runBrowserScenario, until } from '../helpers/inspector-browser';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const PASSWORD = 'inspector-pw-Zq81';
const PARAM = 'param-value-Xk42';
const LEAK_MS = 300;

/** The server trusts local connections: a password in the URL is sent nowhere, but it is in the config. */
function urlWithPassword(): string {
  const url = new URL(PG_URL);
  url.password = PASSWORD;
  return url.toString();
}

const pools: Pool<Client>[] = [];
function makePool(): Pool<Client> {
  const pool = createPool(pgAdapter(urlWithPassword()), {
    name: 'pg_inspector',
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

test('the JSON on PostgreSQL: backend pid, statement text without its parameter, no password', async () => {
  const pool = makePool();
  const detach = attachInspector(pool);
  try {
    await pool.withTx(async (conn, tx) => {
      const pid = ((await conn.query('SELECT pg_backend_pid() AS pid')).rows[0] as { pid: number }).pid;
      const running = conn.query('SELECT pg_sleep(0.3), $1::text AS marker', [PARAM]);
      const snap = inspectLeases(pool);
      const lease = snap.pools[0]!.leases.find((l) => l.id === tx.lease.id)!;
      expect(lease).toMatchObject({ state: 'running', transaction: 'open', txDepth: 1, backendId: pid, statement: { sql: 'SELECT pg_sleep(0.3), $1::text AS marker' } });
      const text = JSON.stringify(snap);
      expect(text).not.toContain(PARAM);
      expect(text).not.toContain(PASSWORD);
      await running;
    });
  } finally {
    detach();
  }
});

test("the drop-in Pool's pool.query shows its statement text too, never its parameter", async () => {
  const facade = new PgCompatPool({ connectionString: urlWithPassword(), max: 2, leasepool: { name: 'pg_inspector_facade', metrics: false } });
  const detach = attachInspector(facade.leasepool);
  try {
    const running = facade.query('SELECT pg_sleep(0.3), $1::text AS marker', [PARAM]);
    await until('the statement shows', () => inspectLeases(facade.leasepool).pools[0]!.leases.some((l) => l.statement !== null));
    const snap = inspectLeases(facade.leasepool);
    expect(snap.pools[0]!.leases[0]).toMatchObject({ state: 'running', statement: { sql: 'SELECT pg_sleep(0.3), $1::text AS marker' } });
    expect(JSON.stringify(snap)).not.toContain(PARAM);
    expect(JSON.stringify(snap)).not.toContain(PASSWORD);
    await running;
  } finally {
    detach();
    await facade.end();
  }
});

test('headless Chromium: a lease in a transaction running pg_sleep appears, ticks, goes; a leaked one is reclaimed from the page', async () => {
  const pool = makePool();
  const shot = await runBrowserScenario({
    pool,
    sleepSql: (seconds) => ({ sql: `SELECT pg_sleep(${seconds}), $1::text AS marker`, params: [PARAM] }),
    backendId: async (conn) => ((await conn.query('SELECT pg_backend_pid() AS pid')).rows[0] as { pid: number }).pid,
    query: (conn, sql, params) => conn.query(sql, params),
    secrets: [PASSWORD, PARAM],
    screenshot: 'inspector-pg.png',
    leakDetectionMs: LEAK_MS,
  });
  expect(fs.statSync(shot).size).toBeGreaterThan(10_000);
  // The reclaimed connection was destroyed: its backend is gone from the server.
  await until('the pool is back to no active lease', () => pool.stats().active === 0);
}, 90_000);
