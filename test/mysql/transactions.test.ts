/**
 * MySQL/MariaDB-specific transaction behaviour through the pool, on a real server (MYSQL_URL,
 * default mysql://root@127.0.0.1:3306/test): DDL that commits implicitly, `deferrable` refused,
 * READ ONLY and isolation really applied, `retryOnLockWaitTimeout`.
 * Tables are prefixed `mysql_tx_<pid>_` (unique per run).
 */
import { createConnection } from 'mysql2/promise';
import type { Connection } from 'mysql2/promise';
import { mysqlAdapter } from '../../adapters/mysql2';
import { ConfigError } from '../../src';
import { poolMaker, type Row } from '../shared/behaviour';
import { rejection } from '../helpers/unit';

const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
/** Unique per process: two runs of this file at once (two developers, two jest invocations) never collide. */
const RUN = process.pid.toString(36);
const ROWS = `mysql_tx_${RUN}_rows`;
const DDL = `mysql_tx_${RUN}_ddl`;

const pools = poolMaker(() => mysqlAdapter(MYSQL_URL), { name: 'mysql_tx' });
const makePool = pools.make;
let admin: Connection;
const extra: Connection[] = [];

function rowsOf(result: unknown): Row[] {
  const first: unknown = Array.isArray(result) ? result[0] : undefined;
  return Array.isArray(first) ? (first as Row[]) : [];
}
async function q(conn: Connection, sql: string, params?: unknown[]): Promise<Row[]> {
  return rowsOf(await conn.query(sql, params));
}
async function ids(): Promise<number[]> {
  return (await q(admin, `SELECT id FROM ${ROWS} ORDER BY id`)).map((r) => Number(r.id));
}
async function one(conn: Connection, sql: string): Promise<unknown> {
  const [row] = await q(conn, sql);
  return row === undefined ? undefined : Object.values(row)[0];
}
const inTx = async (conn: Connection): Promise<boolean> => Number(await one(conn, 'SELECT @@in_transaction')) === 1;
const insert = (conn: Connection, id: number): Promise<Row[]> => q(conn, `INSERT INTO ${ROWS} (id, v) VALUES (?, 0)`, [id]);

beforeAll(async () => {
  admin = await createConnection(MYSQL_URL);
  await admin.query(`DROP TABLE IF EXISTS ${ROWS}, ${DDL}`);
  await admin.query(`CREATE TABLE ${ROWS} (id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB`);
});

beforeEach(async () => {
  await admin.query(`DELETE FROM ${ROWS}`);
  await admin.query(`DROP TABLE IF EXISTS ${DDL}`);
});

afterEach(async () => {
  await pools.closeAll();
  for (const conn of extra.splice(0)) await conn.end();
});

afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${ROWS}, ${DDL}`);
  await admin.end();
});

describe('DDL inside a transaction commits implicitly', () => {
  test('withTx: the server ends the transaction at the DDL; leasepool follows, no rollback on release, no crash', async () => {
    const { pool, sent, m } = makePool({ max: 1 });
    const id = await pool.withTx(async (conn) => {
      await insert(conn, 1);
      expect(await inTx(conn)).toBe(true);
      await conn.query(`CREATE TABLE ${DDL} (id int)`);
      expect(await inTx(conn)).toBe(false); // the DDL committed the insert and ended the transaction
      await insert(conn, 2); // autocommitted
      return Number(await one(conn, 'SELECT CONNECTION_ID()'));
    });
    expect(await ids()).toEqual([1, 2]);

    // A throw after the DDL: the caller gets its own error; what the DDL committed stays (MySQL semantics).
    const boom = new Error('after the DDL');
    const err = await rejection(
      pool.withTx(async (conn) => {
        await insert(conn, 3);
        await conn.query(`DROP TABLE ${DDL}`);
        await insert(conn, 4);
        throw boom;
      }),
    );
    expect(err).toBe(boom);
    expect(await ids()).toEqual([1, 2, 3, 4]);
    // No ROLLBACK on a connection the DDL took out of its transaction; the failed call still counts as one.
    expect(sent.slice(sent.indexOf(`DROP TABLE ${DDL}`))).not.toContain('ROLLBACK');
    expect(await m('leasepool_transactions_total', { outcome: 'rollback' })).toBe(1);

    expect(await m('leasepool_recoveries_total', { kind: 'rollback_on_release' })).toBe(0);
    expect(await m('leasepool_connections_closed_total', { reason: 'broken' })).toBe(0);
    await pool.withLease(async (conn) => {
      expect(Number(await one(conn, 'SELECT CONNECTION_ID()'))).toBe(id); // kept, not destroyed
      expect(await inTx(conn)).toBe(false);
    });
  });

  test('a retryable error after the DDL is not retried: the rerun would repeat work the DDL committed', async () => {
    const { pool, sent, m } = makePool({ max: 1 });
    let runs = 0;
    const deadlock = Object.assign(new Error('Deadlock found when trying to get lock'), { errno: 1213, code: 'ER_LOCK_DEADLOCK' });
    expect(pool.adapter.isRetryable(deadlock)).toBe(true);
    const err = await rejection(
      pool.withTx(
        async (conn) => {
          runs++;
          await insert(conn, 1);
          await conn.query(`CREATE TABLE ${DDL} (id int)`);
          throw deadlock;
        },
        { retries: 3, retryBaseDelayMs: 1 },
      ),
    );
    expect(err).toBe(deadlock);
    expect(runs).toBe(1);
    expect(await ids()).toEqual([1]);
    expect(sent).not.toContain('ROLLBACK');
    expect(await m('leasepool_transactions_total', { outcome: 'retry' })).toBe(0);

    // The control case: the same error inside an open transaction is rolled back and rerun.
    runs = 0;
    await pool.withTx(
      async (conn) => {
        runs++;
        await insert(conn, 2);
        if (runs === 1) throw deadlock;
      },
      { retries: 3, retryBaseDelayMs: 1 },
    );
    expect(runs).toBe(2);
    expect(await ids()).toEqual([1, 2]);
    expect(sent.filter((s) => s === 'ROLLBACK')).toHaveLength(1);
  });

  test('nested: a savepoint the DDL ended is neither released nor rolled back to; the connection is kept', async () => {
    const { pool, sent, m } = makePool({ max: 1 });
    const boom = new Error('inner, after the DDL');
    await pool.withTx(async (outer) => {
      await insert(outer, 1);
      await pool.withTx(async (conn) => {
        await insert(conn, 2);
        await conn.query(`CREATE TABLE ${DDL} (id int)`);
      });
      expect(await rejection(pool.withTx(async (conn) => {
        await insert(conn, 3);
        throw boom;
      }))).toBe(boom);
    });
    // The DDL committed 1 and 2; 3 ran in autocommit mode after it (MySQL semantics).
    expect(await ids()).toEqual([1, 2, 3]);
    expect(sent.filter((s) => /^(RELEASE|ROLLBACK TO) SAVEPOINT/.test(s))).toEqual([]);
    expect(await m('leasepool_connections_closed_total', { reason: 'broken' })).toBe(0);
    expect(await m('leasepool_connections_created_total')).toBe(1);
    expect(await m('leasepool_transactions_total', { outcome: 'commit' })).toBe(1);
  });

  test('raw lease: START TRANSACTION, INSERT, DDL, release: the status is known to be idle, no ROLLBACK is sent, the write stays', async () => {
    const { pool, sent, m } = makePool({ max: 1 });
    const lease = await pool.acquire();
    await lease.conn.query('START TRANSACTION');
    await insert(lease.conn, 5);
    await lease.conn.query(`CREATE TABLE ${DDL} (id int)`);
    await lease.release();
    expect(sent).not.toContain('ROLLBACK');
    expect(await m('leasepool_recoveries_total', { kind: 'rollback_on_release' })).toBe(0);
    expect(await ids()).toEqual([5]);

    // The control case: without the DDL the same lease is rolled back at release.
    const lease2 = await pool.acquire();
    await lease2.conn.query('START TRANSACTION');
    await insert(lease2.conn, 6);
    await lease2.release();
    expect(sent.filter((s) => s === 'ROLLBACK')).toHaveLength(1);
    expect(await m('leasepool_recoveries_total', { kind: 'rollback_on_release' })).toBe(1);
    expect(await ids()).toEqual([5]);
    expect(await m('leasepool_connections_created_total')).toBe(1);
  });
});

describe('the lease\'s conn is the driver\'s own connection', () => {
  test('query and execute (prepared) keep working inside withTx, and roll back with it', async () => {
    const { pool } = makePool({ max: 1 });
    await pool.withTx(async (conn) => {
      await conn.execute(`INSERT INTO ${ROWS} (id, v) VALUES (?, ?)`, [1, 10]);
      const [rows] = await conn.execute(`SELECT v FROM ${ROWS} WHERE id = ?`, [1]);
      expect(rows).toEqual([{ v: 10 }]);
      expect(await inTx(conn)).toBe(true);
    });
    const boom = new Error('undo');
    expect(await rejection(pool.withTx(async (conn) => {
      await conn.execute(`INSERT INTO ${ROWS} (id, v) VALUES (?, ?)`, [2, 20]);
      throw boom;
    }))).toBe(boom);
    expect(await ids()).toEqual([1]);
  });
});

describe('when in doubt at release, roll back', () => {
  test('a prepared statement that may end a transaction: the status is unknown, so the release rolls back (counted); nothing leaks', async () => {
    const { pool, sent, m } = makePool({ max: 1 });
    const lease = await pool.acquire();
    const id = Number(await one(lease.conn, 'SELECT CONNECTION_ID()'));
    await lease.conn.query('START TRANSACTION');
    await insert(lease.conn, 7);
    // Prepared, never executed: the transaction is in fact still open, but a prepared statement's
    // effect is invisible to the tracking, so the adapter no longer claims to know.
    const statement = await lease.conn.prepare('COMMIT');
    await statement.close();
    expect(pool.adapter.txStatus?.(lease.conn)).toBe('unknown');
    await lease.release();
    expect(sent.filter((s) => s === 'ROLLBACK')).toHaveLength(1);
    expect(await m('leasepool_recoveries_total', { kind: 'rollback_on_release' })).toBe(1);
    expect(await ids()).toEqual([]);
    await pool.withLease(async (conn) => {
      expect(Number(await one(conn, 'SELECT CONNECTION_ID()'))).toBe(id); // rolled back and kept, not destroyed
      expect(await inTx(conn)).toBe(false);
    });
  });
});

describe('BEGIN options', () => {
  test('deferrable is a ConfigError on MySQL, before anything is sent (also inside a transaction)', async () => {
    const { pool, sent, m } = makePool();
    let ran = false;
    const err = await rejection(
      pool.withTx(
        async () => {
          ran = true;
        },
        { isolation: 'serializable', readOnly: true, deferrable: true },
      ),
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('INVALID_CONFIG');
    expect((err as ConfigError).fields).toContain('deferrable');
    expect(ran).toBe(false);
    expect(sent).toEqual([]);
    expect(await m('leasepool_connections_created_total')).toBe(0);

    await pool.withTx(async (conn) => {
      await insert(conn, 1);
      const before = sent.length;
      const nested = await rejection(pool.withTx(async () => undefined, { isolation: 'serializable', readOnly: true, deferrable: true }));
      expect(nested).toBeInstanceOf(ConfigError);
      expect(sent.length).toBe(before);
      expect(await inTx(conn)).toBe(true);
    });
    expect(await ids()).toEqual([1]);
  });

  test('readOnly: START TRANSACTION READ ONLY; a write fails with 1792 and the caller gets that error', async () => {
    const { pool, sent } = makePool();
    let thrown: unknown;
    const err = await rejection(
      pool.withTx(
        async (conn) => {
          try {
            await insert(conn, 1);
          } catch (e) {
            thrown = e;
            throw e;
          }
        },
        { readOnly: true },
      ),
    );
    expect(err).toBe(thrown);
    expect((err as { errno?: number }).errno).toBe(1792);
    expect(await ids()).toEqual([]);
    expect(sent).toContain('START TRANSACTION READ ONLY');

    await pool.withTx(
      async (conn) => {
        await insert(conn, 2);
      },
      { readOnly: false },
    );
    expect(await ids()).toEqual([2]);
  });

  test('each isolation level is in force for that transaction only (shown by what it lets another session do)', async () => {
    await admin.query(`INSERT INTO ${ROWS} VALUES (1, 0)`);
    const other = await createConnection(MYSQL_URL);
    extra.push(other);
    await other.query('SET SESSION innodb_lock_wait_timeout = 1');
    const { pool, sent } = makePool({ max: 1 });
    const read = async (conn: Connection): Promise<number> => Number(await one(conn, `SELECT v FROM ${ROWS} WHERE id = 1`));

    // READ UNCOMMITTED: sees another session's uncommitted write.
    await pool.withTx(
      async (conn) => {
        await other.query('START TRANSACTION');
        await other.query(`UPDATE ${ROWS} SET v = 1 WHERE id = 1`);
        expect(await read(conn)).toBe(1);
        await other.query('ROLLBACK');
      },
      { isolation: 'read uncommitted' },
    );
    // READ COMMITTED: a second read sees what another session committed in between.
    await pool.withTx(
      async (conn) => {
        expect(await read(conn)).toBe(0);
        await admin.query(`UPDATE ${ROWS} SET v = 10 WHERE id = 1`);
        expect(await read(conn)).toBe(10);
      },
      { isolation: 'read committed' },
    );
    // REPEATABLE READ: it does not.
    await pool.withTx(
      async (conn) => {
        expect(await read(conn)).toBe(10);
        await admin.query(`UPDATE ${ROWS} SET v = 20 WHERE id = 1`);
        expect(await read(conn)).toBe(10);
      },
      { isolation: 'repeatable read' },
    );
    // SERIALIZABLE: a plain read takes a shared lock; another session cannot write the row meanwhile.
    await pool.withTx(
      async (conn) => {
        expect(await read(conn)).toBe(20);
        const blocked = await rejection(other.query(`UPDATE ${ROWS} SET v = 30 WHERE id = 1`));
        expect((blocked as { errno?: number }).errno).toBe(1205);
      },
      { isolation: 'serializable' },
    );
    // Without the option, the session default again (repeatable read: a plain read takes no lock).
    await pool.withTx(async (conn) => {
      expect(await read(conn)).toBe(20);
      await other.query(`UPDATE ${ROWS} SET v = 30 WHERE id = 1`);
      expect(await one(conn, 'SELECT @@tx_isolation')).toBe('REPEATABLE-READ');
    });
    expect(sent.filter((s) => s.startsWith('SET TRANSACTION'))).toEqual([
      'SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED',
      'SET TRANSACTION ISOLATION LEVEL READ COMMITTED',
      'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ',
      'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
    ]);
  });
});

describe('retryOnLockWaitTimeout', () => {
  async function holdRowLock(id: number): Promise<Connection> {
    const holder = await createConnection(MYSQL_URL);
    extra.push(holder);
    await holder.query('START TRANSACTION');
    await holder.query(`SELECT * FROM ${ROWS} WHERE id = ? FOR UPDATE`, [id]);
    return holder;
  }

  test('off (default): a lock wait timeout (1205) reaches the caller, not retried', async () => {
    await admin.query(`INSERT INTO ${ROWS} VALUES (1, 0)`);
    await holdRowLock(1);
    const { pool, m } = makePool({ max: 1 });
    let runs = 0;
    const err = await rejection(
      pool.withTx(
        async (conn) => {
          runs++;
          await conn.query('SET SESSION innodb_lock_wait_timeout = 1');
          await conn.query(`UPDATE ${ROWS} SET v = v + 1 WHERE id = 1`);
        },
        { retries: 3, retryBaseDelayMs: 1 },
      ),
    );
    expect((err as { errno?: number }).errno).toBe(1205);
    expect(runs).toBe(1);
    expect(await m('leasepool_transactions_total', { outcome: 'retry' })).toBe(0);
    expect(await m('leasepool_transactions_total', { outcome: 'rollback' })).toBe(1);
  });

  test('on: the whole transaction is rolled back and rerun; it succeeds once the lock is gone', async () => {
    await admin.query(`INSERT INTO ${ROWS} VALUES (1, 0), (2, 0)`);
    const holder = await holdRowLock(1);
    const { pool, m } = makePool({ max: 1 }, mysqlAdapter(MYSQL_URL, { retryOnLockWaitTimeout: true }));
    let runs = 0;
    await pool.withTx(
      async (conn, tx) => {
        runs++;
        if (tx.attempt === 2) await holder.query('COMMIT'); // the first attempt has timed out: let go
        await conn.query('SET SESSION innodb_lock_wait_timeout = 1');
        await conn.query(`UPDATE ${ROWS} SET v = v + 1 WHERE id = 2`); // rolled back with attempt 1
        await conn.query(`UPDATE ${ROWS} SET v = v + 1 WHERE id = 1`);
      },
      { retries: 3, retryBaseDelayMs: 1 },
    );
    expect(runs).toBe(2);
    expect(await q(admin, `SELECT id, v FROM ${ROWS} ORDER BY id`)).toEqual([
      { id: 1, v: 1 },
      { id: 2, v: 1 },
    ]);
    expect(await m('leasepool_transactions_total', { outcome: 'retry' })).toBe(1);
    expect(await m('leasepool_transactions_total', { outcome: 'commit' })).toBe(1);
  });
});
