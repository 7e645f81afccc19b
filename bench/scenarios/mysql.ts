/**
 * MariaDB/MySQL scenarios (mysql2), in the shapes of lib/db.ts: `mysql-select` (SELECT 1 at 1, 16,
 * 64 callers over max 10), `mysql-tx` (START TRANSACTION; UPDATE one random row of 1 000; COMMIT
 * at 16 callers) and `mysql-facade` (`pool.query('SELECT 1')` through leasepool's drop-in
 * `createPool` from `leasepool/adapters/mysql2` vs mysql2/promise's `createPool`, same options,
 * at 1, 16, 64 callers).
 *
 * Peer settings: the mysql2 pool hands out its most recently released connection (LIFO:
 * `_freeConnections.push()` on release, `.pop()` on getConnection) and has no option to rotate;
 * leasepool rotates (generic-pool's default `fifo: true`, see src/pool.ts) — at 1 caller the
 * rotation measured up to 1.4x faster with mysql2 on this machine (see shared/notes/baselines.md),
 * so the c=1 ratio leans in leasepool's favour. The mysql2 pool keeps its defaults otherwise
 * (`maxIdle` = `connectionLimit`, 60 s idle timeout); the facade gets the very same options. The
 * leasepool variants use the defaults (leak detection on) unless named `-noleak`.
 */
import { createConnection, createPool as createMysqlPool, type Pool as MysqlPool } from 'mysql2/promise';
import { redact } from '../../src/redact';
import type { VariantInstance } from '../lib/harness';
import { ACCOUNTS, ACCOUNTS_TABLE, DB_MAX, facadeScenario, fmt, randomAccount, selectScenario, txScenario, type AccountsTable } from '../lib/db';
import type { Service } from '../lib/scenario';
import { leasepool, mysqlAdapterModule } from '../lib/subject';

const MYSQL_URL = process.env['MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/test';
const UPDATE = `UPDATE ${ACCOUNTS_TABLE} SET balance = balance + 1 WHERE id = ?`;
/** What both mysql2's pool and the facade are built with. */
const POOL_OPTIONS = { uri: MYSQL_URL, connectionLimit: DB_MAX } as const;

export const mysqlService: Service = {
  name: 'MariaDB/MySQL',
  target: redact(MYSQL_URL),
  async probe() {
    const conn = await createConnection({ uri: MYSQL_URL, connectTimeout: 2_000 });
    try {
      await conn.query('SELECT 1');
    } finally {
      await conn.end().catch(() => undefined);
    }
  },
};

const leasepoolPool = (leakDetectionMs?: number) =>
  leasepool().createPool(mysqlAdapterModule().mysqlAdapter(MYSQL_URL), leakDetectionMs === undefined ? { max: DB_MAX } : { max: DB_MAX, leakDetectionMs });
const mysqlPool = (): MysqlPool => createMysqlPool(POOL_OPTIONS);
const mysqlQuery = (): VariantInstance => {
  const pool = mysqlPool();
  return { op: () => pool.query('SELECT 1'), close: () => pool.end() };
};

export const mysqlSelect = selectScenario({
  name: 'mysql-select',
  title: `SELECT 1 on MariaDB/MySQL, max ${DB_MAX}, 1/16/64 callers`,
  service: mysqlService,
  leasepool(leakDetectionMs) {
    const pool = leasepoolPool(leakDetectionMs);
    return { op: () => pool.withLease((conn) => conn.query('SELECT 1')), close: async () => void (await pool.close()) };
  },
  peer: {
    name: 'mysql2 getConnection',
    open() {
      const pool = mysqlPool();
      return {
        async op() {
          const conn = await pool.getConnection();
          try {
            await conn.query('SELECT 1');
          } finally {
            conn.release();
          }
        },
        close: () => pool.end(),
      };
    },
  },
});

export const mysqlTx = txScenario({
  name: 'mysql-tx',
  title: `START TRANSACTION; UPDATE 1 random row of ${fmt(ACCOUNTS)}; COMMIT on MariaDB/MySQL, max ${DB_MAX}, 16 callers`,
  service: mysqlService,
  async createAccounts(): Promise<AccountsTable> {
    const admin = await createConnection({ uri: MYSQL_URL });
    const dispose = async (): Promise<void> => {
      await admin.query(`DROP TABLE IF EXISTS ${ACCOUNTS_TABLE}`).catch(() => undefined);
      await admin.end();
    };
    try {
      await admin.query(`DROP TABLE IF EXISTS ${ACCOUNTS_TABLE}`);
      await admin.query(`CREATE TABLE ${ACCOUNTS_TABLE} (id INT PRIMARY KEY, balance BIGINT NOT NULL DEFAULT 0) ENGINE=InnoDB`);
      await admin.query(`INSERT INTO ${ACCOUNTS_TABLE} (id) VALUES ${Array.from({ length: ACCOUNTS }, (_, i) => `(${i + 1})`).join(',')}`);
    } catch (err) {
      await dispose();
      throw err;
    }
    return {
      async total() {
        const [rows] = await admin.query(`SELECT CAST(COALESCE(SUM(balance), 0) AS CHAR) AS total FROM ${ACCOUNTS_TABLE}`);
        return Number((rows as { total: string }[])[0]?.total);
      },
      dispose,
    };
  },
  leasepool(committed) {
    const pool = leasepoolPool();
    return {
      async op() {
        await pool.withTx((conn) => conn.query(UPDATE, [randomAccount()]));
        committed();
      },
      close: async () => void (await pool.close()),
    };
  },
  peer: {
    name: 'mysql2 tx',
    open(committed) {
      const pool = mysqlPool();
      return {
        async op() {
          const conn = await pool.getConnection();
          try {
            await conn.beginTransaction();
            await conn.query(UPDATE, [randomAccount()]);
            await conn.commit();
          } catch (err) {
            await conn.rollback().catch(() => undefined);
            throw err;
          } finally {
            conn.release();
          }
          committed();
        },
        close: () => pool.end(),
      };
    },
  },
});

export const mysqlFacade = facadeScenario({
  name: 'mysql-facade',
  title: `pool.query('SELECT 1') through leasepool's mysql2/promise createPool facade vs mysql2's, same options, max ${DB_MAX}, 1/16/64 callers`,
  service: mysqlService,
  facade: {
    name: 'facade pool.query',
    open() {
      const pool = mysqlAdapterModule().createPool(POOL_OPTIONS);
      return { op: () => pool.query('SELECT 1'), close: () => pool.end() };
    },
  },
  driver: { name: 'mysql2 pool.query', open: mysqlQuery },
});
