/**
 * Issue 17, adversarial: ways a `withTx` body can still break "all or nothing" on PostgreSQL, each
 * asserting the correct behaviour. The database (an admin connection outside the pool) is the judge.
 * Tables are prefixed `pg_adv_<pid>_` (unique per run).
 */
import { Client } from 'pg';
import { codeOf, within } from '../helpers/lifecycle';
import { pgTxFixture } from '../helpers/tx-fixtures';

const fx = pgTxFixture('pg_adv');
const { pools, ids, insert } = fx;
const ROWS = fx.rows;
let admin: Client;
beforeAll(() => {
  admin = fx.admin();
});

describe('issue 17 adversary: PostgreSQL', () => {
  test('a raw ROLLBACK typed inside withTx: the withTx never resolves with only the work after it committed', async () => {
    const { pool } = pools.make({ max: 1 });
    const outcome = await within(
      pool.withTx(async (conn) => {
        await insert(conn, 1);
        await conn.query('ROLLBACK').catch(() => undefined);
        await insert(conn, 2).catch(() => undefined);
        return 'done';
      }),
      5_000,
    );
    // Either the whole body committed, or the withTx rejected and nothing of it did.
    const rows = await ids();
    if (outcome !== 'still pending' && outcome.ok) expect(rows).toEqual([1, 2]);
    else expect(rows).toEqual([]);
    expect(outcome).not.toBe('still pending');
  });

  test('a raw COMMIT typed inside withTx, then the body throws: the withTx rejects and nothing of it is committed', async () => {
    const { pool } = pools.make({ max: 1 });
    const outcome = await within(
      pool.withTx(async (conn) => {
        await insert(conn, 1);
        await conn.query('COMMIT').catch(() => undefined);
        await insert(conn, 2).catch(() => undefined);
        throw new Error('body failed');
      }),
      5_000,
    );
    expect(outcome).not.toBe('still pending');
    expect(outcome !== 'still pending' && outcome.ok).toBe(false);
    expect(codeOf(outcome !== 'still pending' && !outcome.ok ? outcome.error : undefined)).not.toBe('TX_OUTCOME_UNKNOWN');
    expect(await ids()).toEqual([]);
  });

  test('a literal that reads like a COMMIT or SET after a semicolon is not a statement: it runs inside withTx and does not count as a session change', async () => {
    const { pool, m } = pools.make({ max: 1 });
    await admin.query(`CREATE TABLE IF NOT EXISTS ${ROWS}_notes (id int PRIMARY KEY, note text)`);
    try {
      await pool.withTx(async (conn) => {
        await insert(conn, 1);
        await conn.query(`INSERT INTO ${ROWS}_notes (id, note) VALUES (1, 'start; end'), (2, E'it\\'s; commit'), (3, $$x; rollback$$), (4, 'a; SET b')`);
      });
      expect(await ids()).toEqual([1]);
      expect((await admin.query(`SELECT count(*)::int AS n FROM ${ROWS}_notes`)).rows[0]).toEqual({ n: 4 });
      // Not taken for a session change: the connection was kept, not closed at release.
      expect(await m('leasepool_connections_closed_total', { reason: 'reset' })).toBe(0);
    } finally {
      await admin.query(`DROP TABLE IF EXISTS ${ROWS}_notes`);
    }
  });

  test('a session set_config next to a local one in the same statement does not reach the next borrower (its write must not fail)', async () => {
    const { pool } = pools.make({ max: 1 });
    await pool.withLease(async (conn) => {
      await conn.query(`SELECT set_config('default_transaction_read_only', 'on', false), set_config('application_name', 'adv', true)`);
    });
    const outcome = await within(pool.withLease((conn) => insert(conn, 8)), 5_000);
    expect(outcome).toMatchObject({ ok: true });
    expect(await ids()).toEqual([8]);
  });

  test('a nested withTx / withLease chained on an un-awaited statement and refused (TX_ENDED) rolls the transaction back, as a refused statement does', async () => {
    const { pool } = pools.make({ max: 1 });
    for (const nested of ['withTx', 'withLease'] as const) {
      await admin.query(`TRUNCATE ${ROWS}`);
      let late: Promise<unknown> | undefined;
      const outcome = await within(
        pool.withTx(async (conn) => {
          late = insert(conn, 1).then(() => (nested === 'withTx' ? pool.withTx((c) => insert(c, 2)) : pool.withLease((c) => insert(c, 2))));
          late.catch(() => undefined);
          return 'done';
        }),
        5_000,
      );
      const lateOutcome = await within(late as Promise<unknown>, 5_000);
      const rows = await ids();
      // The body's nested scope was cut off: the transaction must not commit without it.
      if (lateOutcome !== 'still pending' && !lateOutcome.ok) {
        expect({ nested, outcome: outcome !== 'still pending' && outcome.ok, rows }).toEqual({ nested, outcome: false, rows: [] });
      } else expect({ nested, rows }).toEqual({ nested, rows: [1, 2] });
    }
  });

  test('a statement sent from a callback-API chain after the body threw is refused: it never runs in autocommit after the ROLLBACK', async () => {
    const { pool } = pools.make({ max: 1 });
    const query = (conn: Client, sql: string, values: unknown[], cb: (err: unknown) => void): void =>
      (conn.query as unknown as (text: string, values: unknown[], cb: (err: unknown) => void) => void)(sql, values, cb);
    let late: unknown = 'not sent';
    const lateDone = new Promise<void>((resolve) => {
      const outcome = pool.withTx(async (conn) => {
        await insert(conn, 1);
        query(conn, 'SELECT pg_sleep(0.05)', [], () => {
          try {
            query(conn, `INSERT INTO ${ROWS} (id) VALUES ($1)`, [2], (err) => {
              late = err ?? 'ran';
              resolve();
            });
          } catch (err) {
            late = err;
            resolve();
          }
        });
        throw new Error('body failed');
      });
      outcome.catch(() => undefined);
    });
    await within(lateDone, 5_000);
    expect(late).not.toBe('ran');
    expect(await ids()).toEqual([]);
  });

  test('a statement sent from a callback-API chain of a nested withTx that threw is refused: it never commits with the outer transaction', async () => {
    const { pool } = pools.make({ max: 1 });
    const query = (conn: Client, sql: string, values: unknown[], cb: (err: unknown) => void): void =>
      (conn.query as unknown as (text: string, values: unknown[], cb: (err: unknown) => void) => void)(sql, values, cb);
    let late: unknown = 'not sent';
    const outcome = await within(
      pool.withTx(async (conn) => {
        await insert(conn, 1);
        const lateDone = new Promise<void>((resolve) => {
          const nested = pool.withTx(async (c) => {
            query(c, 'SELECT pg_sleep(0.05)', [], () => {
              try {
                query(c, `INSERT INTO ${ROWS} (id) VALUES ($1)`, [2], (err) => {
                  late = err ?? 'ran';
                  resolve();
                });
              } catch (err) {
                late = err;
                resolve();
              }
            });
            throw new Error('nested failed');
          });
          nested.catch(() => undefined);
        });
        await lateDone;
        return 'done';
      }),
      5_000,
    );
    // The nested withTx failed: its statement must not have run, whatever the outer did.
    expect(late).not.toBe('ran');
    expect(await ids()).toEqual(outcome !== 'still pending' && outcome.ok ? [1] : []);
  });

  test('a callback-form statement the driver refuses synchronously (caught by the body) does not make withTx hang', async () => {
    const { pool } = pools.make({ max: 1 });
    const outcome = await within(
      pool.withTx(async (conn) => {
        await insert(conn, 1);
        try {
          // pg throws at once for a missing query text, before anything is sent.
          (conn.query as unknown as (text: unknown, cb: () => void) => void)(undefined, () => undefined);
        } catch {
          // the body carries on
        }
        return 'done';
      }),
      5_000,
    );
    expect(outcome).toEqual({ ok: true, value: 'done' });
    expect(await ids()).toEqual([1]);
  });

  test('a session SET in a multi-statement text does not reach the next borrower (its write must not fail)', async () => {
    const { pool } = pools.make({ max: 1 });
    await pool.withLease(async (conn) => {
      await conn.query('SELECT 1; SET default_transaction_read_only = on');
    });
    // The next borrower gets the same (or a fresh) connection: its plain INSERT must work.
    const outcome = await within(pool.withLease((conn) => insert(conn, 7)), 5_000);
    expect(outcome).toMatchObject({ ok: true });
    expect(await ids()).toEqual([7]);
  });
});
