/**
 * Lease deadlines on a real MariaDB/MySQL: at the deadline the lease is revoked, the running
 * statement killed on the server (`KILL QUERY`), the transaction rolled back, the connection
 * destroyed, and the caller rejects at once with LEASE_TIMEOUT. The deadline is reported as one
 * (`deadline` kind, `'deadline'` event), not as a leak. Table: `mysql_deadlines_rows_<pid>`.
 */
import type { Connection } from 'mysql2/promise';
import { Registry } from 'prom-client';
import { mysqlAdapter } from '../../adapters/mysql2';
import { MYSQL_URL, mysqlRowsTable } from '../helpers/mysql-rows-table';
import { createPool, type DeadlineEvent, type Lease, type Pool, type PoolOptions, type ReclaimEvent } from '../../src';
import { captureLogger, metric, rejection, waitFor, type LogEntry } from '../helpers/lifecycle';

const db = mysqlRowsTable('deadlines');
const TABLE = db.table;
const DEADLINE_MS = 500;
const REJECT_WITHIN_MS = DEADLINE_MS + 700;

function setup(options: PoolOptions = {}): { pool: Pool<Connection>; registry: Registry; reclaims: ReclaimEvent[]; deadlines: DeadlineEvent[]; logs: LogEntry[] } {
  const { logger, entries } = captureLogger();
  const registry = new Registry();
  const pool = createPool(mysqlAdapter(MYSQL_URL), { name: 'mysql_deadlines', max: 1, logger, metrics: { registry }, ...options });
  db.track(pool);
  const reclaims: ReclaimEvent[] = [];
  pool.on('reclaim', (e) => reclaims.push(e));
  const deadlines: DeadlineEvent[] = [];
  pool.on('deadline', (e) => deadlines.push(e));
  return { pool, registry, reclaims, deadlines, logs: entries };
}

async function rowsTagged(tag: string): Promise<number> {
  const [rows] = await db.admin.query(`SELECT COUNT(*) AS n FROM ${TABLE} WHERE tag = ?`, [tag]);
  return Number((rows as { n: number }[])[0]?.n);
}

/** Statements of `threadId` still running SLEEP, as the server sees them. */
async function sleeping(threadId: number): Promise<number> {
  const [rows] = await db.admin.query("SELECT COUNT(*) AS n FROM information_schema.processlist WHERE id = ? AND command = 'Query' AND info LIKE '%SLEEP(%'", [threadId]);
  return Number((rows as { n: number }[])[0]?.n);
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

interface Seen {
  threadId: number;
  conn: Connection;
  lease: Lease<Connection>;
  /** The statement the deadline interrupts. */
  sleep: Promise<unknown>;
}

async function expectReclaimed(s: ReturnType<typeof setup>, seen: Seen, startedAt: number, err: unknown, tag: string): Promise<void> {
  const elapsed = Date.now() - startedAt;
  expect(err).toMatchObject({ code: 'LEASE_TIMEOUT', timeoutMs: DEADLINE_MS });
  expect(elapsed).toBeGreaterThanOrEqual(DEADLINE_MS - 20);
  expect(elapsed).toBeLessThan(REJECT_WITHIN_MS);
  // Killed on the server (ER_QUERY_INTERRUPTED), not left sleeping. The caller was told at the
  // deadline; the statement's own error comes once the KILL QUERY has landed.
  expect(await rejection(seen.sleep)).toMatchObject({ errno: 1317 });
  expect(await sleeping(seen.threadId)).toBe(0);
  expect(await rowsTagged(tag)).toBe(0);
  expect(seen.lease.state).toBe('revoked');
  expect(thrown(() => seen.conn.query('SELECT 1'))).toMatchObject({ code: 'LEASE_REVOKED' });
  expect(await metric(s.registry, 'leasepool_recoveries_total', { kind: 'deadline' })).toBe(1);
  expect(await metric(s.registry, 'leasepool_recoveries_total', { kind: 'leak_reclaimed' })).toBe(0);
  expect(s.deadlines).toEqual([expect.objectContaining({ id: seen.lease.id, timeoutMs: DEADLINE_MS, reason: err })]);
  expect(s.reclaims).toEqual([]);
  expect(s.logs.filter((e) => e.level === 'warn' || e.level === 'error')).toEqual([]);
  const threadId = await s.pool.withLease(async (conn) => conn.threadId, { acquireTimeoutMs: 2_000 });
  expect(threadId).not.toBe(seen.threadId);
  await waitFor('the reclaimed connection is gone on the server', async () => {
    const [rows] = await db.admin.query('SELECT 1 FROM information_schema.processlist WHERE id = ?', [seen.threadId]);
    return (rows as unknown[]).length === 0;
  });
}

describe('lease deadlines (mysql)', () => {
  test('leaseTimeoutMs around SELECT SLEEP(30) inside withTx after an INSERT: LEASE_TIMEOUT, sleep killed, row absent, lease revoked, pool serves on', async () => {
    const s = setup({ leaseTimeoutMs: DEADLINE_MS });
    const tag = 'pool-deadline';
    const seen = {} as Seen;
    const startedAt = Date.now();
    const err = await rejection(
      s.pool.withTx(async (conn, tx) => {
        Object.assign(seen, { threadId: conn.threadId, conn, lease: tx.lease });
        await conn.query(`INSERT INTO ${TABLE} (tag) VALUES (?)`, [tag]);
        await (seen.sleep = conn.query('SELECT SLEEP(30)'));
      }),
    );
    await expectReclaimed(s, seen, startedAt, err, tag);
    expect(s.deadlines[0]?.inTransaction).toBe(true);
  });

  test('per-call timeoutMs on withLease (hand-written START TRANSACTION)', async () => {
    const s = setup();
    const tag = 'withlease-timeout';
    const seen = {} as Seen;
    const startedAt = Date.now();
    const err = await rejection(
      s.pool.withLease(
        async (conn, lease) => {
          Object.assign(seen, { threadId: conn.threadId, conn, lease });
          await conn.query('START TRANSACTION');
          await conn.query(`INSERT INTO ${TABLE} (tag) VALUES (?)`, [tag]);
          await (seen.sleep = conn.query('SELECT SLEEP(30)'));
          await conn.query('COMMIT');
        },
        { timeoutMs: DEADLINE_MS },
      ),
    );
    await expectReclaimed(s, seen, startedAt, err, tag);
  });

  test('per-call timeoutMs on withTx, with a callback that swallows the kill and ignores tx.signal', async () => {
    const s = setup();
    const tag = 'ignores-signal';
    const seen = {} as Seen;
    let proceed!: () => void;
    const proceeding = new Promise<void>((resolve) => (proceed = resolve));
    let laterError: unknown;
    let bodyDone!: Promise<void>;
    const startedAt = Date.now();
    const err = await rejection(
      s.pool.withTx(
        (conn, tx) => {
          bodyDone = (async () => {
            Object.assign(seen, { threadId: conn.threadId, conn, lease: tx.lease });
            await conn.query(`INSERT INTO ${TABLE} (tag) VALUES (?)`, [tag]);
            try {
              await (seen.sleep = conn.query('SELECT SLEEP(30)'));
            } catch {
              // swallowed: the callback carries on as if nothing happened
            }
            await proceeding;
            try {
              await conn.query(`INSERT INTO ${TABLE} (tag) VALUES (?)`, [tag]);
            } catch (e) {
              laterError = e;
            }
          })();
          return bodyDone;
        },
        { timeoutMs: DEADLINE_MS },
      ),
    );
    expect(laterError).toBeUndefined();
    await expectReclaimed(s, seen, startedAt, err, tag);
    proceed();
    await bodyDone;
    expect(laterError).toMatchObject({ code: 'LEASE_REVOKED' });
    expect(await rowsTagged(tag)).toBe(0);
  });
});
