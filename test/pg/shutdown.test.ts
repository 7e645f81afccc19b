/**
 * Graceful shutdown on a real PostgreSQL: `pool.close({ timeoutMs })` waits for leases until its
 * deadline, reclaims the rest, never hangs (dead backend, blackholed connect), and
 * `shutdownOnSignals` in a child process running transfers: SIGTERM exits in time with every
 * transfer either committed or rolled back; SIGKILL mid-transaction loses nothing either.
 * Tables: `pg_shutdown_rows_<pid>`, `pg_shutdown_accounts_<pid>`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { Client } from 'pg';
import { Registry } from 'prom-client';
import { pgAdapter } from '../../adapters/pg';
import { createPool, type Pool, type PoolOptions } from '../../src';
import { blackhole, captureLogger, metric, rejection, waitFor, type LogEntry } from '../helpers/lifecycle';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
// Suffixed with the worker's pid: another jest run on this machine (same file) never drops our tables.
const ROWS = `pg_shutdown_rows_${process.pid}`;
const ACCOUNTS = `pg_shutdown_accounts_${process.pid}`;
const ACCOUNT_COUNT = 20;
const OPENING_BALANCE = 1_000;
const ROOT = path.resolve(__dirname, '../..');
const CHILD = path.join(__dirname, 'fixtures', 'transfer-child.ts');

let admin: Client;
const pools: Pool<Client>[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  admin = new Client(PG_URL);
  await admin.connect();
  await admin.query(`DROP TABLE IF EXISTS ${ROWS}, ${ACCOUNTS}`);
  await admin.query(`CREATE TABLE ${ROWS} (id serial PRIMARY KEY, tag text NOT NULL)`);
  await admin.query(`CREATE TABLE ${ACCOUNTS} (id int PRIMARY KEY, balance bigint NOT NULL)`);
});

afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${ROWS}, ${ACCOUNTS}`);
  await admin.end();
});

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 100 })));
});

function setup(options: PoolOptions = {}): { pool: Pool<Client>; registry: Registry; logs: LogEntry[] } {
  const { logger, entries } = captureLogger();
  const registry = new Registry();
  const pool = createPool(pgAdapter(PG_URL), { name: 'pg_shutdown', max: 2, logger, metrics: { registry }, ...options });
  pools.push(pool);
  return { pool, registry, logs: entries };
}

function pidOf(conn: Client): number {
  const pid = (conn as unknown as { processID: unknown }).processID;
  if (typeof pid !== 'number') throw new Error('no backend pid');
  return pid;
}

async function backendGone(pid: number): Promise<boolean> {
  const { rows } = await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
  return rows.length === 0;
}

async function rowsTagged(tag: string): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${ROWS} WHERE tag = $1`, [tag]);
  return (rows[0] as { n: number }).n;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('pool.close({ timeoutMs })', () => {
  test('a leaked lease (mid-transaction) is reclaimed at the deadline; a lease released during the wait counts as released', async () => {
    const { pool, registry } = setup();
    const leaked = await pool.acquire();
    const leakedConn = leaked.conn;
    const leakedPid = pidOf(leakedConn);
    await leakedConn.query('BEGIN');
    await leakedConn.query(`INSERT INTO ${ROWS} (tag) VALUES ('leaked-at-close')`);
    const polite = await pool.acquire();

    const startedAt = Date.now();
    const closing = pool.close({ timeoutMs: 800 });
    expect(pool.close()).toBe(closing); // a second close returns the same promise
    expect(pool.close({ timeoutMs: 5 })).toBe(closing);
    expect(pool.stats().closed).toBe(true);
    await expect(pool.acquire()).rejects.toMatchObject({ code: 'POOL_CLOSED' });

    // Released while close() waits: counted as released, its connection closed for shutdown.
    await polite.release();
    const summary = await closing;
    const elapsed = Date.now() - startedAt;

    expect(summary).toEqual({ released: 1, reclaimed: 1 });
    expect(elapsed).toBeGreaterThanOrEqual(780); // it did wait for the leaked lease
    expect(elapsed).toBeLessThan(800 + 1_000);
    expect(leaked.state).toBe('revoked');
    expect(thrown(() => leakedConn.query('SELECT 1'))).toMatchObject({ code: 'LEASE_REVOKED' });
    await leaked.release(); // harmless after the reclaim
    expect(await metric(registry, 'leasepool_recoveries_total', { kind: 'shutdown_reclaimed' })).toBe(1);
    await waitFor('the leaked backend is gone', () => backendGone(leakedPid));
    expect(await rowsTagged('leaked-at-close')).toBe(0); // rolled back
    expect(pool.stats()).toMatchObject({ size: 0, active: 0, idle: 0, closed: true });
  });

  test('a close with nothing leased resolves at once; a lease released before the deadline ends the wait early', async () => {
    const { pool } = setup();
    const lease = await pool.acquire();
    setTimeout(() => void lease.release(), 100);
    const startedAt = Date.now();
    expect(await pool.close({ timeoutMs: 5_000 })).toEqual({ released: 1, reclaimed: 0 });
    expect(Date.now() - startedAt).toBeLessThan(1_500);
  });

  test('a lease whose own deadline reclaims it while close() waits counts as reclaimed, not released', async () => {
    const { pool, registry } = setup({ leaseTimeoutMs: 300 });
    const leaked = await pool.acquire();
    const pid = pidOf(leaked.conn);
    const startedAt = Date.now();
    const summary = await pool.close({ timeoutMs: 5_000 });
    expect(summary).toEqual({ released: 0, reclaimed: 1 });
    expect(Date.now() - startedAt).toBeLessThan(2_000); // the reclaim ended the wait, not the 5 s deadline
    expect(leaked.state).toBe('revoked');
    expect(await metric(registry, 'leasepool_recoveries_total', { kind: 'deadline' })).toBe(1);
    await waitFor('the reclaimed backend is gone', () => backendGone(pid));
  });

  test('acquire, withLease and withTx after close reject with POOL_CLOSED', async () => {
    const { pool } = setup();
    await pool.withLease((conn) => conn.query('SELECT 1'));
    await pool.close({ timeoutMs: 1_000 });
    await expect(pool.acquire()).rejects.toMatchObject({ code: 'POOL_CLOSED' });
    await expect(pool.withLease((conn) => conn.query('SELECT 1'))).rejects.toMatchObject({ code: 'POOL_CLOSED' });
    await expect(pool.withTx((conn) => conn.query('SELECT 1'))).rejects.toMatchObject({ code: 'POOL_CLOSED' });
  });

  test('a leaked lease whose backend was killed by pg_terminate_backend: close still meets its deadline', async () => {
    const { pool, logs } = setup();
    const leaked = await pool.acquire();
    const pid = pidOf(leaked.conn);
    const idle = await pool.acquire();
    const idlePid = pidOf(idle.conn);
    await idle.release();
    await admin.query('SELECT pg_terminate_backend($1), pg_terminate_backend($2)', [pid, idlePid]);
    await waitFor('the pool notices the dead leased connection', () => logs.some((e) => e.level === 'error' && e.msg.includes('while leased')));

    const startedAt = Date.now();
    const summary = await pool.close({ timeoutMs: 500 });
    const elapsed = Date.now() - startedAt;
    expect(summary).toEqual({ released: 0, reclaimed: 1 });
    expect(elapsed).toBeLessThan(500 + 1_000);
    expect(leaked.state).toBe('revoked');
    expect(pool.stats()).toMatchObject({ size: 0, active: 0 });
  });

  test('a scope whose backend is killed while close() waits ends with the fatal error and counts as released, before the deadline', async () => {
    const { pool } = setup();
    let pid = 0;
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const scope = pool.withLease(async (conn) => {
      pid = pidOf(conn);
      started();
      await conn.query('SELECT pg_sleep(30)');
    });
    const failed = rejection(scope);
    await running;
    await waitFor('pg_sleep runs', async () => {
      const { rows } = await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND query ILIKE '%pg_sleep%' AND state = 'active'", [pid]);
      return rows.length === 1;
    });

    const startedAt = Date.now();
    const closing = pool.close({ timeoutMs: 5_000 });
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    const summary = await closing;
    expect(Date.now() - startedAt).toBeLessThan(2_000);
    expect(summary).toEqual({ released: 1, reclaimed: 0 });
    expect(await failed).toMatchObject({ code: '57P01' }); // admin_shutdown: the real error, not a pool error
  });

  test('a transaction that finishes before the deadline commits, and its caller gets its result', async () => {
    const { pool } = setup();
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const tx = pool.withTx(async (conn) => {
      await conn.query(`INSERT INTO ${ROWS} (tag) VALUES ('committed-during-close')`);
      started();
      await conn.query('SELECT pg_sleep(0.2)');
      return 'done';
    });
    await running;
    const summary = await pool.close({ timeoutMs: 3_000 });
    expect(await tx).toBe('done');
    expect(summary).toEqual({ released: 1, reclaimed: 0 });
    expect(await rowsTagged('committed-during-close')).toBe(1);
  });

  test('close while a connect is blackholed (accepts, never answers) meets its deadline and aborts the connect', async () => {
    const hole = await blackhole();
    try {
      const { logger } = captureLogger();
      const pool = createPool(pgAdapter({ host: '127.0.0.1', port: hole.port, user: 'postgres', database: 'test' }), {
        name: 'pg_shutdown_blackhole',
        max: 1,
        connectTimeoutMs: 20_000,
        acquireTimeoutMs: 20_000,
        logger,
      });
      pools.push(pool);
      const waiting = rejection(pool.acquire());
      await waitFor('the connect reaches the blackhole', () => hole.sockets.length === 1);

      const startedAt = Date.now();
      const summary = await pool.close({ timeoutMs: 300 });
      const elapsed = Date.now() - startedAt;
      expect(summary).toEqual({ released: 0, reclaimed: 0 });
      expect(elapsed).toBeLessThan(300 + 700);
      expect(await waiting).toMatchObject({ code: 'POOL_CLOSED' });
      // The half-open connect was abandoned by the client, not left to its 20 s connect timeout.
      await waitFor('the client drops the blackholed socket', () => hole.closed.size === 1, 2_000);
      expect(pool.stats()).toMatchObject({ size: 0, pending: 0 });
    } finally {
      await hole.close();
    }
  });
});

// ------------------------------------------------------------------ child process under load

interface Child {
  proc: ChildProcess;
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

function startChild(env: Record<string, string>): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    cwd: ROOT,
    env: { ...process.env, PG_URL, TRANSFER_TABLE: ACCOUNTS, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(proc);
  const lines: string[] = [];
  let partial = '';
  let err = '';
  proc.stdout?.setEncoding('utf8');
  proc.stdout?.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { proc, lines, exited, stderr: () => err };
}

/** Wait for the child's "ready" line; on failure say why (its exit and stderr). */
async function untilReady(child: Child): Promise<void> {
  await waitFor('the child is under load', () => child.lines.includes('ready') || child.proc.exitCode !== null, 20_000).catch(() => undefined);
  if (!child.lines.includes('ready')) throw new Error(`transfer child not ready (exit ${child.proc.exitCode}): ${child.stderr()}`);
}

async function resetAccounts(): Promise<void> {
  await admin.query(`TRUNCATE ${ACCOUNTS}`);
  await admin.query(`INSERT INTO ${ACCOUNTS} (id, balance) SELECT g, $1 FROM generate_series(1, $2) g`, [OPENING_BALANCE, ACCOUNT_COUNT]);
}

async function totals(): Promise<{ sum: number; count: number }> {
  const { rows } = await admin.query<{ sum: string; count: number }>(`SELECT sum(balance)::text AS sum, count(*)::int AS count FROM ${ACCOUNTS}`);
  return { sum: Number(rows[0]?.sum), count: rows[0]?.count ?? 0 };
}

async function childBackends(appName: string): Promise<number> {
  const { rows } = await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [appName]);
  return (rows[0] as { n: number }).n;
}

/** Server-side fate of the transactions the child reported as "debited <txid>". */
async function fates(lines: string[]): Promise<Record<string, number>> {
  const txids = lines.filter((l) => l.startsWith('debited ')).map((l) => l.slice('debited '.length));
  const { rows } = await admin.query<{ status: string; n: number }>(
    'SELECT txid_status(t::bigint) AS status, count(*)::int AS n FROM unnest($1::text[]) t GROUP BY 1',
    [txids],
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

describe('shutdownOnSignals in a process running transfers', () => {
  const WORKERS = 4;
  const SHUTDOWN_MS = 1_500;

  test('SIGTERM mid-load: exits within timeoutMs + 1 s; every transfer committed or rolled back; the sum is unchanged', async () => {
    await resetAccounts();
    const before = await totals();
    const appName = `lp_pg_shutdown_sigterm_${process.pid}`;
    const child = startChild({ SHUTDOWN_MS: String(SHUTDOWN_MS), WORKERS: String(WORKERS), SLOW_TX: '1', APP_NAME: appName });
    await untilReady(child);
    // The slow transfer (1 → 2) is open in its pg_sleep(30): close() will have to reclaim it.
    await waitFor('the slow transfer is in flight', async () => {
      const { rows } = await admin.query(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE '%pg_sleep%' AND state = 'active' AND now() - query_start > interval '200 milliseconds'",
        [appName],
      );
      return rows.length === 1;
    });

    const signalledAt = Date.now();
    child.proc.kill('SIGTERM');
    const exit = await child.exited;
    const elapsed = Date.now() - signalledAt;

    expect(exit).toEqual({ code: 128 + 15, signal: null });
    expect(elapsed).toBeLessThan(SHUTDOWN_MS + 1_000);
    expect(elapsed).toBeGreaterThanOrEqual(SHUTDOWN_MS - 100); // it waited for the slow transfer until the deadline
    const closed = child.lines.find((l) => l.startsWith('closed '));
    const summaries = JSON.parse((closed ?? 'closed null').slice('closed '.length)) as { released: number; reclaimed: number }[];
    expect(summaries).toEqual([{ released: expect.any(Number), reclaimed: 1 }]);

    await waitFor('the child backends are gone', async () => (await childBackends(appName)) === 0);
    expect(await totals()).toEqual(before);
    const { rows } = await admin.query<{ id: number; balance: string }>(`SELECT id, balance::text FROM ${ACCOUNTS} WHERE id IN (1, 2) ORDER BY id`);
    expect(rows.map((r) => Number(r.balance))).toEqual([OPENING_BALANCE, OPENING_BALANCE]); // the slow debit was rolled back
    const fate = await fates(child.lines);
    expect(fate['committed']).toBeGreaterThanOrEqual(WORKERS);
    expect(fate['in progress']).toBeUndefined();
  }, 40_000);

  test('SIGKILL mid-transaction: the server rolls the open transfers back; the sum is unchanged', async () => {
    await resetAccounts();
    const before = await totals();
    const appName = `lp_pg_shutdown_sigkill_${process.pid}`;
    const child = startChild({ WORKERS: String(WORKERS), APP_NAME: appName });
    await untilReady(child);
    // A debit reported now belongs to a transaction that is open (its credit is 50 ms away).
    const seen = child.lines.length;
    await waitFor('a transfer has debited and not yet credited', () => child.lines.slice(seen).some((l) => l.startsWith('debited ')), 5_000, 1);
    child.proc.kill('SIGKILL');
    const exit = await child.exited;
    expect(exit.signal).toBe('SIGKILL');

    await waitFor('the server has ended the child backends', async () => (await childBackends(appName)) === 0);
    expect(await totals()).toEqual(before);
    const fate = await fates(child.lines);
    expect(fate['aborted']).toBeGreaterThanOrEqual(1); // the kill landed mid-transaction: rolled back by the server
    expect(fate['committed']).toBeGreaterThanOrEqual(WORKERS);
    expect(fate['in progress']).toBeUndefined();
  }, 40_000);
});
