/**
 * Issue 17, adversarial: ways a `withTx` body can still break "all or nothing" on MariaDB/MySQL,
 * each asserting the correct behaviour. The database (an admin connection outside the pool) is the
 * judge. Tables are prefixed `mysql_adv_<pid>_` (unique per run).
 */
import type { Connection } from 'mysql2/promise';
import { mysqlAdapter } from '../../adapters/mysql2';
import { codeOf, latch, within } from '../helpers/lifecycle';
import { mysqlTxFixture, q } from '../helpers/tx-fixtures';

const fx = mysqlTxFixture('mysql_adv');
const { pools, ids, insert, bump, untilLockWait } = fx;
const ROWS = fx.rows;
const OTHER = fx.other;
const MYSQL_URL = fx.url;
let admin: Connection;
beforeAll(() => {
  admin = fx.admin();
});

describe('issue 17 adversary: MariaDB', () => {
  test('a prepared statement (conn.prepare) kept past its withTx cannot run: nothing of it reaches the database in autocommit', async () => {
    const { pool } = pools.make({ max: 1 });
    type Stmt = { execute(params: unknown[]): Promise<unknown> };
    let stmt: Stmt | undefined;
    await pool.withTx(async (conn) => {
      stmt = (await conn.prepare(`INSERT INTO ${OTHER} (id) VALUES (?)`)) as unknown as Stmt;
      await stmt.execute([1]);
    });
    expect(await ids(OTHER)).toEqual([1]);
    // The transaction and its lease are over: the statement object must not run any more.
    const late = await within((stmt as Stmt).execute([2]), 5_000);
    expect(late).toMatchObject({ ok: false });
    expect(await ids(OTHER)).toEqual([1]);
  });

  test('a prepared statement run after a caught deadlock is refused: the rolled-back withTx commits nothing in autocommit', async () => {
    const { pool } = pools.make({ max: 3 });
    await q(admin, `INSERT INTO ${ROWS} (id, v) VALUES (1, 0), (2, 0)`);
    const lightLocked = latch();
    const heavyLocked = latch();
    const lightTx = pool.withTx(async (conn) => {
      const stmt = (await conn.prepare(`INSERT INTO ${OTHER} (id) VALUES (?)`)) as unknown as { execute(params: unknown[]): Promise<unknown> };
      try {
        await bump(conn, 1);
        lightLocked.open();
        await heavyLocked.promise;
        await bump(conn, 2); // the deadlock victim: the server rolls the whole transaction back
      } catch {
        // the body carries on
      }
      await stmt.execute([999]).catch(() => undefined);
    });
    const heavyTx = pool.withTx(async (conn) => {
      const heavyRows = Array.from({ length: 30 }, (_, i) => `(${i + 1})`).join(', ');
      await q(conn, `INSERT INTO ${OTHER} (id) VALUES ${heavyRows}`);
      await lightLocked.promise;
      await bump(conn, 2);
      heavyLocked.open();
      await untilLockWait();
      await bump(conn, 1);
    });
    const [light, heavy] = await Promise.allSettled([lightTx, heavyTx]);
    expect(heavy.status).toBe('fulfilled');
    expect(light.status).toBe('rejected');
    // 1..30 are heavy's; 999 would be the light body's statement run in autocommit after the rollback.
    expect((await ids(OTHER)).includes(999)).toBe(false);
  });

  test('conn.rollback() called inside withTx: the withTx never resolves with only the work after it committed', async () => {
    const { pool } = pools.make({ max: 1 });
    const outcome = await within(
      pool.withTx(async (conn) => {
        await insert(conn, 1);
        await conn.rollback().catch(() => undefined);
        await insert(conn, 2).catch(() => undefined);
        return 'done';
      }),
      5_000,
    );
    expect(outcome).not.toBe('still pending');
    const rows = await ids();
    if (outcome !== 'still pending' && outcome.ok) expect(rows).toEqual([1, 2]);
    else expect(rows).toEqual([]);
  });

  test('conn.beginTransaction() called inside withTx, then the body throws: nothing of the withTx is committed', async () => {
    const { pool } = pools.make({ max: 1 });
    const outcome = await within(
      pool.withTx(async (conn) => {
        await insert(conn, 1);
        await conn.beginTransaction().catch(() => undefined); // MySQL: commits the open transaction first
        await insert(conn, 2).catch(() => undefined);
        throw new Error('body failed');
      }),
      5_000,
    );
    expect(outcome).toMatchObject({ ok: false });
    expect(codeOf(outcome !== 'still pending' && !outcome.ok ? outcome.error : undefined)).not.toBe('TX_OUTCOME_UNKNOWN');
    expect(await ids()).toEqual([]);
  });

  test('multipleStatements: a ROLLBACK inside a multi-statement text in withTx never leaves the withTx resolving with only the later work committed', async () => {
    const { pool } = pools.make({ max: 1 }, mysqlAdapter({ uri: MYSQL_URL, multipleStatements: true }));
    const outcome = await within(
      pool.withTx(async (conn) => {
        await insert(conn, 1);
        await conn.query(`DO 0; ROLLBACK; INSERT INTO ${ROWS} (id, v) VALUES (2, 0)`).catch(() => undefined);
        await insert(conn, 3).catch(() => undefined);
        return 'done';
      }),
      5_000,
    );
    expect(outcome).not.toBe('still pending');
    const rows = await ids();
    if (outcome !== 'still pending' && outcome.ok) expect(rows).toEqual([1, 2, 3]);
    else expect(rows).toEqual([]);
  });

  test('COMMIT RELEASE typed inside withTx: the withTx never rejects (other than TX_OUTCOME_UNKNOWN) with the work before it committed', async () => {
    const { pool } = pools.make({ max: 1 });
    const outcome = await within(
      pool.withTx(async (conn) => {
        await insert(conn, 1);
        await conn.query('COMMIT RELEASE').catch(() => undefined);
        await insert(conn, 2).catch(() => undefined);
        return 'done';
      }),
      5_000,
    );
    expect(outcome).not.toBe('still pending');
    const rows = await ids();
    if (outcome !== 'still pending' && outcome.ok) expect(rows).toEqual([1, 2]);
    else if (outcome !== 'still pending' && codeOf(outcome.error) !== 'TX_OUTCOME_UNKNOWN') expect(rows).toEqual([]);
  });

  test('an un-awaited withTx with an isolation level, cut off when its withLease returns, leaves no transaction open on the pooled connection (the next borrower keeps its write)', async () => {
    const { pool } = pools.make({ max: 1 });
    let cut: Promise<unknown> | undefined;
    await pool.withLease(async () => {
      // Not awaited: BEGIN is two statements here (SET TRANSACTION, START TRANSACTION).
      cut = pool.withTx((c) => insert(c, 1), { isolation: 'serializable' });
      cut.catch(() => undefined);
    });
    await within(cut as Promise<unknown>, 5_000);
    // The next borrower's plain INSERT must not run inside a transaction nobody will commit.
    const next = await within(pool.withLease((conn) => insert(conn, 5)), 5_000);
    expect(next).toMatchObject({ ok: true });
    expect(await ids()).toEqual([5]);
  });

  test('a callback passed to a promise connection (mysql2 refuses it synchronously) does not make withTx hang', async () => {
    const { pool } = pools.make({ max: 1 });
    const outcome = await within(
      pool.withTx(async (conn) => {
        await insert(conn, 1);
        try {
          (conn.query as unknown as (sql: string, cb: () => void) => void)('SELECT 1', () => undefined);
        } catch {
          // "Callback function is not available with promise clients": the body carries on
        }
        return 'done';
      }),
      5_000,
    );
    expect(outcome).toEqual({ ok: true, value: 'done' });
    expect(await ids()).toEqual([1]);
  });
});
