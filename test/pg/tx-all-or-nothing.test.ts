/**
 * Issue 17 on PostgreSQL: a transaction is all or nothing whatever the body does. One test per
 * defect class the issue names (1 a scope outliving its revoked lease, 3 a COMMIT answered
 * ROLLBACK, 4 an un-awaited nested withTx when the outer throws, 5 a defer that never settles
 * under a deadline, 6 session state surviving release), each asserting the correct behaviour:
 * the rows in the database and how the call settles. The database (an admin connection outside
 * the pool) is the judge. Tables are prefixed `pg_aon_<pid>_` (unique per run).
 */
import { Client } from 'pg';
import { codeOf, outcomeOf, rejection, waitFor, within } from '../helpers/lifecycle';
import { pgTxFixture } from '../helpers/tx-fixtures';

const fx = pgTxFixture('pg_aon');
const { pools, ids, insert } = fx;
const ROWS = fx.rows;
let admin: Client;
beforeAll(() => {
  admin = fx.admin();
});

/** An advisory lock key unique to this run. */
const LOCK_KEY = 170_000 + (process.pid % 10_000);

const timer = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('issue 17: all or nothing on PostgreSQL', () => {
  test('1: a withTx / withLease called after its outer withTx was revoked at its deadline fails (LEASE_REVOKED / LEASE_RELEASED) and commits nothing elsewhere', async () => {
    const { pool } = pools.make({ max: 3 });
    let inner: Promise<unknown> | undefined;
    let innerLease: Promise<unknown> | undefined;
    let called!: () => void;
    const innerCalled = new Promise<void>((resolve) => {
      called = resolve;
    });
    const outer = pool.withTx(
      async (conn) => {
        await insert(conn, 1);
        // Outlive the deadline: the pool revokes the lease meanwhile.
        await timer(300);
        inner = pool.withTx((c) => insert(c, 2));
        innerLease = pool.withLease((c) => insert(c, 3));
        called();
        await Promise.allSettled([inner, innerLease]);
      },
      { timeoutMs: 100 },
    );
    expect(codeOf(await rejection(outer))).toBe('LEASE_TIMEOUT');
    await innerCalled;
    const innerOutcome = await outcomeOf(inner as Promise<unknown>);
    const leaseOutcome = await outcomeOf(innerLease as Promise<unknown>);
    expect(await ids()).toEqual([]);
    expect(innerOutcome.ok).toBe(false);
    expect(leaseOutcome.ok).toBe(false);
    expect(['LEASE_REVOKED', 'LEASE_RELEASED']).toContain(innerOutcome.code);
    expect(['LEASE_REVOKED', 'LEASE_RELEASED']).toContain(leaseOutcome.code);
  });

  test('3: a body that leaves a failing statement un-awaited and returns: COMMIT is answered ROLLBACK, so withTx rejects (TX_ABORTED) and nothing is committed', async () => {
    const { pool } = pools.make({ max: 1 });
    const outcome = await within(
      pool.withTx(async (conn) => {
        await insert(conn, 1);
        // Still running when the body returns (longer than the adapter's settle bound), then fails
        // at run time (a cast after the sleep; a constant 1/0 would fail at planning, at once):
        // the transaction is aborted and the server answers the COMMIT queued behind it with ROLLBACK.
        void conn.query(`SELECT (pg_sleep(1.3)::text || 'x')::int`).catch(() => undefined);
        return 'done';
      }),
      10_000,
    );
    expect(outcome).not.toBe('still pending');
    expect(outcome).toMatchObject({ ok: false });
    if (outcome !== 'still pending' && !outcome.ok) expect(codeOf(outcome.error)).toBe('TX_ABORTED');
    expect(await ids()).toEqual([]);
    // The connection is clean for the next borrower.
    expect(await pool.withLease(async (conn) => ((await conn.query('SELECT 1')) as unknown, conn.getTransactionStatus()))).toBe('I');
  });

  test('3b: the same with two un-awaited statements queued, the second failing: never reported as committed', async () => {
    const { pool } = pools.make({ max: 1 });
    const outcome = await within(
      pool.withTx(async (conn) => {
        await insert(conn, 1);
        void conn.query('SELECT pg_sleep(0.05)').catch(() => undefined);
        void conn.query('SELECT 1/0').catch(() => undefined);
        return 'done';
      }),
      10_000,
    );
    expect(outcome).toMatchObject({ ok: false });
    expect(await ids()).toEqual([]);
  });

  test('4: an un-awaited nested withTx still running when the outer throws: none of its statements run outside the transaction', async () => {
    const { pool } = pools.make({ max: 2 });
    // Timings of the inner scope against the outer ROLLBACK; on today's code at least one of them
    // lets an inner INSERT run after the ROLLBACK, in autocommit.
    const variants: Record<string, { inner: (c: Client) => Promise<unknown>; outerTurn: boolean }> = {
      'inner inserts at once': { inner: async (c) => (await insert(c, 2), await insert(c, 3)), outerTurn: false },
      'inner inserts after a statement, outer waits a timer turn': {
        inner: async (c) => (await c.query('SELECT pg_sleep(0.05)'), await insert(c, 2)),
        outerTurn: true,
      },
      'inner leaves its INSERT un-awaited': { inner: async (c) => void insert(c, 2).catch(() => undefined), outerTurn: false },
    };
    const leaked: Record<string, number[]> = {};
    for (const [name, { inner: body, outerTurn }] of Object.entries(variants)) {
      await admin.query(`TRUNCATE ${ROWS}`);
      let inner: Promise<unknown> | undefined;
      const error = await rejection(
        pool.withTx(async (conn) => {
          await insert(conn, 1);
          inner = pool.withTx(body);
          void inner.catch(() => undefined);
          if (outerTurn) await timer(1);
          throw new Error('outer gives up');
        }),
      );
      expect((error as Error).message).toBe('outer gives up');
      await within(inner as Promise<unknown>, 5_000);
      await waitFor('the pool has no active lease', () => pool.stats().active === 0);
      // Statements the inner scope sent may still be on their way: the pool is idle, the server decides.
      await waitFor('no session of the pool is busy', async () => Number((await admin.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()`)).rows[0]?.n) === 0);
      const rows = await ids();
      if (rows.length > 0) leaked[name] = rows;
    }
    expect(leaked).toEqual({});
  });

  test('5: withLease({ timeoutMs }) whose deferred cleanup never settles rejects at its deadline and the connection is reclaimed', async () => {
    const { pool } = pools.make({ max: 1 });
    const started = Date.now();
    const outcome = await within(
      pool.withLease(
        async (conn, lease) => {
          lease.defer(() => new Promise<void>(() => undefined));
          await conn.query('SELECT 1');
          return 'body done';
        },
        { timeoutMs: 300 },
      ),
      5_000,
    );
    expect(outcome).not.toBe('still pending');
    expect(outcome).toMatchObject({ ok: false });
    expect(Date.now() - started).toBeLessThan(4_000);
    await waitFor('the connection was reclaimed', () => pool.stats().active === 0, 3_000);
    // The pool serves the next borrower.
    expect(await pool.withLease(async (conn) => (await conn.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one)).toBe(1);
  });

  test('6: a session advisory lock taken by one borrower does not survive its release', async () => {
    const { pool } = pools.make({ max: 1 });
    await pool.withLease(async (conn) => {
      await conn.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    });
    // The connection is idle in the pool now: nobody holds the lock any more.
    const { rows } = await admin.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1) AS got', [LOCK_KEY]);
    try {
      expect(rows[0]?.got).toBe(true);
    } finally {
      await admin.query('SELECT pg_advisory_unlock_all()');
    }
  });

  test('6b: a session SET that would cost the next borrower its write (default_transaction_read_only) does not survive release', async () => {
    const { pool } = pools.make({ max: 1 });
    await pool.withLease(async (conn) => {
      await conn.query('SET default_transaction_read_only = on');
    });
    await pool.withLease((conn) => insert(conn, 7));
    await pool.withTx((conn) => insert(conn, 8));
    expect(await ids()).toEqual([7, 8]);
  });
});
