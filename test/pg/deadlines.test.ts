/**
 * Lease deadlines on a real PostgreSQL: `leaseTimeoutMs` (pool-wide) and per-call `timeoutMs`
 * (withLease / withTx). At the deadline the lease is revoked, the running statement is cancelled
 * on the server, the transaction rolled back, the connection destroyed, and the caller rejects at
 * once with LEASE_TIMEOUT, even when its callback ignores the signal. A deadline is not a leak: it
 * is counted as `deadline`, reported as a `'deadline'` event and an info line without a stack; only a
 * lease the leak detector had reported first is `leak_reclaimed`. Table: `pg_deadlines_rows_<pid>`.
 */
import { Client } from 'pg';
import type { DatabaseError } from 'pg';
import { Registry } from 'prom-client';
import { pgAdapter } from '../../adapters/pg';
import { createPool, type DeadlineEvent, type Lease, type Pool, type PoolOptions, type ReclaimEvent } from '../../src';
import { captureLogger, metric, rejection, siteOf, topSite, waitFor, type LogEntry } from '../helpers/lifecycle';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
// Suffixed with the worker's pid: another jest run on this machine (same file) never drops our table.
const TABLE = `pg_deadlines_rows_${process.pid}`;
const DEADLINE_MS = 500;
/** Deadline + cancel/rollback round trips + a loaded 2-core machine. */
const REJECT_WITHIN_MS = DEADLINE_MS + 700;

let admin: Client;
const pools: Pool<Client>[] = [];

beforeAll(async () => {
  admin = new Client(PG_URL);
  await admin.connect();
  await admin.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await admin.query(`CREATE TABLE ${TABLE} (id serial PRIMARY KEY, tag text NOT NULL)`);
  // Rows tagged 'slow-commit' make COMMIT take a second (a deferred constraint trigger runs at COMMIT).
  await admin.query(`CREATE OR REPLACE FUNCTION ${TABLE}_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.tag = 'slow-commit' THEN PERFORM pg_sleep(1); END IF; RETURN NULL; END $$`);
  await admin.query(`CREATE CONSTRAINT TRIGGER ${TABLE}_slow_commit AFTER INSERT ON ${TABLE}
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${TABLE}_slow_commit()`);
});

afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await admin.query(`DROP FUNCTION IF EXISTS ${TABLE}_slow_commit()`);
  await admin.end();
});

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 100 })));
});

interface Setup {
  pool: Pool<Client>;
  registry: Registry;
  logs: LogEntry[];
  reclaims: ReclaimEvent[];
  deadlines: DeadlineEvent[];
}

function setup(options: PoolOptions = {}): Setup {
  const { logger, entries } = captureLogger();
  const registry = new Registry();
  const pool = createPool(pgAdapter(PG_URL), { name: 'pg_deadlines', max: 1, logger, metrics: { registry }, ...options });
  pools.push(pool);
  const reclaims: ReclaimEvent[] = [];
  pool.on('reclaim', (e) => reclaims.push(e));
  const deadlines: DeadlineEvent[] = [];
  pool.on('deadline', (e) => deadlines.push(e));
  return { pool, registry, logs: entries, reclaims, deadlines };
}

function pidOf(conn: Client): number {
  const pid = (conn as unknown as { processID: unknown }).processID;
  if (typeof pid !== 'number') throw new Error('no backend pid');
  return pid;
}

/** Backends of `pid` still running pg_sleep, as the server sees them. */
async function sleepingBackends(pid: number): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query ILIKE '%pg_sleep%'",
    [pid],
  );
  return (rows[0] as { n: number }).n;
}

async function rowsTagged(tag: string): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${TABLE} WHERE tag = $1`, [tag]);
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

/** What a test saw of the reclaimed lease: its backend, its client, and the statement that was running. */
interface Seen {
  pid: number;
  conn: Client;
  lease: Lease<Client>;
  sleepError?: unknown;
  sleep?: Promise<unknown>;
}

/**
 * Everything the spec says about a lease reclaimed at its deadline. `kind`: `deadline` unless the
 * leak detector had reported the lease before its deadline came.
 */
async function expectReclaimed(s: Setup, seen: Seen, startedAt: number, err: unknown, tag: string, kind: 'deadline' | 'leak_reclaimed' = 'deadline'): Promise<void> {
  const elapsed = Date.now() - startedAt;
  expect(err).toMatchObject({ code: 'LEASE_TIMEOUT', timeoutMs: DEADLINE_MS });
  expect(elapsed).toBeGreaterThanOrEqual(DEADLINE_MS - 20);
  expect(elapsed).toBeLessThan(REJECT_WITHIN_MS);
  // Cancelled on the server (SQLSTATE 57014 query_canceled), not left running. The caller was told
  // at the deadline; the statement's own error comes once the cancel has landed.
  const sleepError = seen.sleep !== undefined ? await rejection(seen.sleep) : seen.sleepError;
  expect((sleepError as DatabaseError).code).toBe('57014');
  expect(await sleepingBackends(seen.pid)).toBe(0);
  // The transaction was rolled back.
  expect(await rowsTagged(tag)).toBe(0);
  // The lease is revoked: any further use throws LEASE_REVOKED.
  expect(seen.lease.state).toBe('revoked');
  expect(thrown(() => seen.conn.query('SELECT 1'))).toMatchObject({ code: 'LEASE_REVOKED' });
  expect(thrown(() => seen.lease.conn)).toMatchObject({ code: 'LEASE_REVOKED' });
  expect(seen.lease.signal.aborted).toBe(true);
  expect(await metric(s.registry, 'leasepool_recoveries_total', { kind })).toBe(1);
  expect(await metric(s.registry, 'leasepool_recoveries_total', { kind: kind === 'deadline' ? 'leak_reclaimed' : 'deadline' })).toBe(0);
  const leaseLines = s.logs.filter((e) => e.msg.includes(`lease #${seen.lease.id} `));
  if (kind === 'deadline') {
    expect(s.deadlines).toEqual([{ id: seen.lease.id, ageMs: expect.any(Number), inTransaction: expect.any(Boolean), timeoutMs: DEADLINE_MS, reason: err }]);
    expect(s.reclaims).toEqual([]);
    // Logged at info, once, without an acquire stack; no warning anywhere about this lease.
    expect(leaseLines.map((e) => e.level)).toEqual(['info']);
    expect(leaseLines[0]?.msg).toContain('revoked at its deadline');
    expect(leaseLines[0]?.msg).not.toContain('acquired at');
  } else {
    expect(s.reclaims).toHaveLength(1);
    expect(s.reclaims[0]).toMatchObject({ id: seen.lease.id, kind, reason: err });
    expect(s.deadlines).toEqual([]);
    expect(leaseLines.some((e) => e.level === 'warn' && e.msg.includes(`reclaimed (leak_reclaimed)`))).toBe(true);
  }
  // The pool serves the next caller, on a fresh connection (the reclaimed one was destroyed).
  const next = await s.pool.withLease((conn) => conn.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'), { acquireTimeoutMs: 2_000 });
  expect(next.rows[0]?.pid).not.toBe(seen.pid);
  expect(s.pool.stats()).toMatchObject({ active: 0, size: 1 });
  // The reclaimed backend goes away.
  await waitFor('the reclaimed backend is gone', async () => {
    const { rows } = await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [seen.pid]);
    return rows.length === 0;
  });
}

describe('lease deadlines (pg)', () => {
  test('leaseTimeoutMs around pg_sleep(30) inside withTx after an INSERT: LEASE_TIMEOUT, sleep cancelled, row absent, lease revoked, pool serves on', async () => {
    const s = setup({ leaseTimeoutMs: DEADLINE_MS });
    const tag = 'pool-deadline';
    const seen = {} as Seen;
    const startedAt = Date.now();
    const err = await rejection(
      s.pool.withTx(async (conn, tx) => {
        Object.assign(seen, { pid: pidOf(conn), conn, lease: tx.lease });
        await conn.query(`INSERT INTO ${TABLE} (tag) VALUES ($1)`, [tag]);
        await (seen.sleep = conn.query('SELECT pg_sleep(30)'));
      }),
    );
    await expectReclaimed(s, seen, startedAt, err, tag);
    expect(s.deadlines[0]?.inTransaction).toBe(true);
  });

  test('leaseTimeoutMs applies to pool.acquire() leases too; one the leak detector reported first is leak_reclaimed, its report names the acquire line', async () => {
    const s = setup({ leaseTimeoutMs: DEADLINE_MS, leakDetectionMs: DEADLINE_MS / 2, leakStacksPerSecond: Infinity });
    const tag = 'acquire-deadline';
    const startedAt = Date.now();
    const here = new Error(); const lease = await s.pool.acquire();
    const conn = lease.conn;
    const pid = pidOf(conn);
    await conn.query('BEGIN');
    await conn.query(`INSERT INTO ${TABLE} (tag) VALUES ($1)`, [tag]);
    const sleepError = await rejection(conn.query('SELECT pg_sleep(30)'));
    const err = s.reclaims[0]?.reason;
    await expectReclaimed(s, { pid, conn, lease, sleepError }, startedAt, err, tag, 'leak_reclaimed');
    expect(topSite(s.reclaims[0]?.stack)).toBe(siteOf(here));
    await lease.release(); // idempotent after a reclaim, never throws
  });

  test('per-call timeoutMs on withLease (hand-written BEGIN): same outcome without a pool-wide deadline', async () => {
    const s = setup();
    const tag = 'withlease-timeout';
    const seen = {} as Seen;
    const startedAt = Date.now();
    const err = await rejection(
      s.pool.withLease(
        async (conn, lease) => {
          Object.assign(seen, { pid: pidOf(conn), conn, lease });
          await conn.query('BEGIN');
          await conn.query(`INSERT INTO ${TABLE} (tag) VALUES ($1)`, [tag]);
          await (seen.sleep = conn.query('SELECT pg_sleep(30)'));
          await conn.query('COMMIT');
        },
        { timeoutMs: DEADLINE_MS },
      ),
    );
    await expectReclaimed(s, seen, startedAt, err, tag);
  });

  test('per-call timeoutMs on withTx', async () => {
    const s = setup();
    const tag = 'withtx-timeout';
    const seen = {} as Seen;
    const startedAt = Date.now();
    const err = await rejection(
      s.pool.withTx(
        async (conn, tx) => {
          Object.assign(seen, { pid: pidOf(conn), conn, lease: tx.lease });
          await conn.query(`INSERT INTO ${TABLE} (tag) VALUES ($1)`, [tag]);
          await (seen.sleep = conn.query('SELECT pg_sleep(30)'));
        },
        { timeoutMs: DEADLINE_MS },
      ),
    );
    await expectReclaimed(s, seen, startedAt, err, tag);
  });

  test('a callback that ignores tx.signal and swallows the cancel still gets LEASE_TIMEOUT on time; its later queries throw LEASE_REVOKED', async () => {
    const s = setup();
    const tag = 'ignores-signal';
    const seen = {} as Seen;
    let proceed!: () => void;
    const proceeding = new Promise<void>((resolve) => (proceed = resolve));
    let laterError: unknown;
    let bodyDone!: Promise<void>;
    const startedAt = Date.now();
    const call = s.pool.withTx(
      (conn, tx) => {
        bodyDone = (async () => {
          Object.assign(seen, { pid: pidOf(conn), conn, lease: tx.lease });
          await conn.query(`INSERT INTO ${TABLE} (tag) VALUES ($1)`, [tag]);
          try {
            await (seen.sleep = conn.query('SELECT pg_sleep(30)'));
          } catch {
            // swallowed: the callback carries on as if nothing happened
          }
          await proceeding; // never looks at tx.signal
          try {
            await conn.query(`INSERT INTO ${TABLE} (tag) VALUES ($1)`, [tag]);
          } catch (e) {
            laterError = e;
          }
        })();
        return bodyDone;
      },
      { timeoutMs: DEADLINE_MS },
    );
    const err = await rejection(call);
    // The caller did not wait for the callback: it is still parked on `proceeding`.
    expect(laterError).toBeUndefined();
    await expectReclaimed(s, seen, startedAt, err, tag);
    proceed();
    await bodyDone;
    expect(laterError).toMatchObject({ code: 'LEASE_REVOKED' });
    expect(await rowsTagged(tag)).toBe(0);
  });

  test('a deadline that fires while COMMIT is on the wire gives TX_OUTCOME_UNKNOWN, never LEASE_TIMEOUT', async () => {
    const s = setup();
    const err = await rejection(
      s.pool.withTx((conn) => conn.query(`INSERT INTO ${TABLE} (tag) VALUES ('slow-commit')`), { timeoutMs: DEADLINE_MS }),
    );
    expect(err).toMatchObject({ code: 'TX_OUTCOME_UNKNOWN', cause: { code: 'LEASE_TIMEOUT' } });
    expect((err as Error).message).toContain('revoked during COMMIT');
    // The COMMIT did land: had the caller been told LEASE_TIMEOUT ("your work was undone"), it would be a lie.
    await waitFor('the slow COMMIT finishes', async () => (await rowsTagged('slow-commit')) === 1);
    expect(s.deadlines).toHaveLength(1);
    await s.pool.withLease((conn) => conn.query('SELECT 1'), { acquireTimeoutMs: 3_000 });
  });

  test('a lease released before its deadline is not reclaimed later', async () => {
    const s = setup({ leaseTimeoutMs: 300 });
    await s.pool.withTx((conn) => conn.query(`INSERT INTO ${TABLE} (tag) VALUES ('kept')`));
    const lease = await s.pool.acquire();
    await lease.release();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(s.reclaims).toEqual([]);
    expect(s.deadlines).toEqual([]);
    expect(await metric(s.registry, 'leasepool_recoveries_total', { kind: 'deadline' })).toBe(0);
    expect(await metric(s.registry, 'leasepool_recoveries_total', { kind: 'leak_reclaimed' })).toBe(0);
    expect(await rowsTagged('kept')).toBe(1);
  });
});
