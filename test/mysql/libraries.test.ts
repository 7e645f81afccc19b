/**
 * Libraries written for mysql2 run unchanged on the drop-in, against the real MariaDB/MySQL:
 * Kysely's `MysqlDialect` (it takes mysql2's callback pool: `pool.pool`, as with mysql2's promise
 * pool) and Drizzle's `mysql2` driver (it takes the promise pool itself). Each: a select, a
 * transaction, a rollback on throw, a nested transaction (savepoint); the assertions read the rows
 * back through a separate connection. Tables are prefixed `mysql_lib_`.
 */
import { createConnection } from 'mysql2/promise';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { Kysely, MysqlDialect, sql, type Generated } from 'kysely';
import { drizzle } from 'drizzle-orm/mysql2';
import { eq } from 'drizzle-orm';
import { int, mysqlTable, varchar } from 'drizzle-orm/mysql-core';

import { createPool, type Pool } from '../../adapters/mysql2';
import { captureLogger, rejection } from '../helpers/lifecycle';

const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const KYSELY_TABLE = 'mysql_lib_kysely';
const DRIZZLE_TABLE = 'mysql_lib_drizzle';

let admin: Connection;
const pools: Pool[] = [];

function facade(connectionLimit = 2): Pool {
  const pool = createPool({ uri: MYSQL_URL, connectionLimit, leasepool: { leakDetectionMs: 0, endTimeoutMs: 1_000, logger: captureLogger().logger } });
  pools.push(pool);
  return pool;
}

/** Names in the table, read outside the pool under test. */
async function names(table: string): Promise<string[]> {
  const [rows] = await admin.query<RowDataPacket[]>(`SELECT name FROM ${table} ORDER BY id`);
  return rows.map((r) => String(r.name));
}

/** No connection of the pool is checked out, and none it holds is inside a transaction. */
async function settled(pool: Pool): Promise<void> {
  expect(pool.stats()).toMatchObject({ active: 0, pending: 0 });
  const [rows] = await pool.query<RowDataPacket[]>('SELECT @@in_transaction AS t');
  expect(Number(rows[0]?.t)).toBe(0);
}

beforeAll(async () => {
  admin = await createConnection(MYSQL_URL);
  for (const table of [KYSELY_TABLE, DRIZZLE_TABLE]) {
    await admin.query(`DROP TABLE IF EXISTS ${table}`);
    await admin.query(`CREATE TABLE ${table} (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL, balance INT NOT NULL) ENGINE=InnoDB`);
  }
});

afterAll(async () => {
  await Promise.all(pools.splice(0).map((p) => p.end()));
  for (const table of [KYSELY_TABLE, DRIZZLE_TABLE]) await admin.query(`DROP TABLE IF EXISTS ${table}`);
  await admin.end();
});

beforeEach(async () => {
  for (const table of [KYSELY_TABLE, DRIZZLE_TABLE]) await admin.query(`DELETE FROM ${table}`);
});

// ---------------------------------------------------------------------------------------------

interface KyselyDb {
  [KYSELY_TABLE]: { id: Generated<number>; name: string; balance: number };
}

describe("Kysely's MysqlDialect on pool.pool", () => {
  let pool: Pool;
  let db: Kysely<KyselyDb>;

  beforeEach(() => {
    pool = facade();
    // Exactly what Kysely's documentation shows for a mysql2 pool.
    db = new Kysely<KyselyDb>({ dialect: new MysqlDialect({ pool: pool.pool }) });
  });

  afterEach(async () => {
    await db.destroy(); // ends the pool through pool.pool.end(callback)
    expect(pool.stats().closed).toBe(true);
  });

  test('a select returns the rows', async () => {
    await admin.query(`INSERT INTO ${KYSELY_TABLE} (name, balance) VALUES ('alice', 10), ('bob', 20)`);
    const rows = await db.selectFrom(KYSELY_TABLE).select(['name', 'balance']).where('balance', '>', 5).orderBy('id').execute();
    expect(rows).toEqual([
      { name: 'alice', balance: 10 },
      { name: 'bob', balance: 20 },
    ]);
    const { n } = await db.selectFrom(KYSELY_TABLE).select(sql<number>`COUNT(*)`.as('n')).executeTakeFirstOrThrow();
    expect(Number(n)).toBe(2);
    await settled(pool);
  });

  test('a transaction commits all its statements on one connection', async () => {
    const threads = await db.transaction().execute(async (trx) => {
      await trx.insertInto(KYSELY_TABLE).values({ name: 'carol', balance: 5 }).execute();
      await trx.updateTable(KYSELY_TABLE).set({ balance: 7 }).where('name', '=', 'carol').execute();
      const a = await sql<{ id: number; t: number }>`SELECT CONNECTION_ID() AS id, @@in_transaction AS t`.execute(trx);
      await trx.insertInto(KYSELY_TABLE).values({ name: 'dave', balance: 1 }).execute();
      const b = await sql<{ id: number }>`SELECT CONNECTION_ID() AS id`.execute(trx);
      expect(Number(a.rows[0]?.t)).toBe(1);
      return [a.rows[0]?.id, b.rows[0]?.id];
    });
    expect(threads[0]).toBe(threads[1]);
    expect(await names(KYSELY_TABLE)).toEqual(['carol', 'dave']);
    const [rows] = await admin.query<RowDataPacket[]>(`SELECT balance FROM ${KYSELY_TABLE} WHERE name = 'carol'`);
    expect(rows[0]?.balance).toBe(7);
    await settled(pool);
  });

  test('a transaction whose body throws is rolled back and the error comes out', async () => {
    const boom = new Error('kysely boom');
    const err = await rejection(
      db.transaction().execute(async (trx) => {
        await trx.insertInto(KYSELY_TABLE).values({ name: 'eve', balance: 1 }).execute();
        throw boom;
      }),
    );
    expect(err).toBe(boom);
    expect(await names(KYSELY_TABLE)).toEqual([]);
    await settled(pool);
  });

  test('savepoints of a controlled transaction: only the work after the savepoint is undone', async () => {
    const trx = await db.startTransaction().execute();
    await trx.insertInto(KYSELY_TABLE).values({ name: 'outer', balance: 1 }).execute();
    const sp = await trx.savepoint('sp1').execute();
    await sp.insertInto(KYSELY_TABLE).values({ name: 'inner', balance: 2 }).execute();
    const back = await sp.rollbackToSavepoint('sp1').execute();
    const sp2 = await back.savepoint('sp2').execute();
    await sp2.insertInto(KYSELY_TABLE).values({ name: 'kept', balance: 3 }).execute();
    const released = await sp2.releaseSavepoint('sp2').execute();
    await released.commit().execute();
    expect(await names(KYSELY_TABLE)).toEqual(['outer', 'kept']);
    await settled(pool);
  });

  test('streaming a select (the callback connection\'s query().stream()) gives every row and gives the connection back', async () => {
    await admin.query(`INSERT INTO ${KYSELY_TABLE} (name, balance) VALUES ('s1', 1), ('s2', 2), ('s3', 3)`);
    const seen: string[] = [];
    for await (const row of db.selectFrom(KYSELY_TABLE).select('name').orderBy('id').stream()) seen.push(row.name);
    expect(seen).toEqual(['s1', 's2', 's3']);
    await settled(pool);
  });
});

// ---------------------------------------------------------------------------------------------

const accounts = mysqlTable(DRIZZLE_TABLE, {
  id: int('id').primaryKey().autoincrement(),
  name: varchar('name', { length: 64 }).notNull(),
  balance: int('balance').notNull(),
});

describe("Drizzle's mysql2 driver on the pool", () => {
  let pool: Pool;

  beforeEach(() => {
    pool = facade();
  });

  // The pool goes where a mysql2/promise pool goes, without a cast.
  const orm = (p: Pool) => drizzle({ client: p });

  test('a select returns the rows', async () => {
    await admin.query(`INSERT INTO ${DRIZZLE_TABLE} (name, balance) VALUES ('alice', 10), ('bob', 20)`);
    const db = orm(pool);
    expect(await db.select({ name: accounts.name, balance: accounts.balance }).from(accounts).orderBy(accounts.id)).toEqual([
      { name: 'alice', balance: 10 },
      { name: 'bob', balance: 20 },
    ]);
    expect(await db.select({ name: accounts.name }).from(accounts).where(eq(accounts.balance, 20))).toEqual([{ name: 'bob' }]);
    await settled(pool);
  });

  test('a transaction commits all its statements on one connection', async () => {
    const db = orm(pool);
    await db.transaction(async (tx) => {
      await tx.insert(accounts).values({ name: 'carol', balance: 5 });
      await tx.update(accounts).set({ balance: 7 }).where(eq(accounts.name, 'carol'));
      await tx.insert(accounts).values({ name: 'dave', balance: 1 });
    });
    expect(await names(DRIZZLE_TABLE)).toEqual(['carol', 'dave']);
    expect(await db.select({ balance: accounts.balance }).from(accounts).where(eq(accounts.name, 'carol'))).toEqual([{ balance: 7 }]);
    await settled(pool);
  });

  test('a transaction whose body throws is rolled back and the error comes out', async () => {
    const db = orm(pool);
    const boom = new Error('drizzle boom');
    const err = await rejection(
      db.transaction(async (tx) => {
        await tx.insert(accounts).values({ name: 'eve', balance: 1 });
        throw boom;
      }),
    );
    expect(err).toBe(boom);
    expect(await names(DRIZZLE_TABLE)).toEqual([]);
    await settled(pool);
  });

  test('a nested transaction is a savepoint: its failure undoes only its own work', async () => {
    const db = orm(pool);
    await db.transaction(async (tx) => {
      await tx.insert(accounts).values({ name: 'outer', balance: 1 });
      const inner = await rejection(
        tx.transaction(async (nested) => {
          await nested.insert(accounts).values({ name: 'inner', balance: 2 });
          throw new Error('inner boom');
        }),
      );
      expect((inner as Error).message).toBe('inner boom');
      await tx.transaction(async (nested) => {
        await nested.insert(accounts).values({ name: 'kept', balance: 3 });
      });
    });
    expect(await names(DRIZZLE_TABLE)).toEqual(['outer', 'kept']);
    await settled(pool);
  });

  test('the callback pool works for Drizzle too (it calls pool.pool.promise())', async () => {
    await admin.query(`INSERT INTO ${DRIZZLE_TABLE} (name, balance) VALUES ('cb', 1)`);
    const db = drizzle({ client: pool.pool });
    expect(await db.select({ name: accounts.name }).from(accounts)).toEqual([{ name: 'cb' }]);
    await db.transaction(async (tx) => {
      await tx.insert(accounts).values({ name: 'cb2', balance: 2 });
    });
    expect(await names(DRIZZLE_TABLE)).toEqual(['cb', 'cb2']);
    await settled(pool);
  });
});
