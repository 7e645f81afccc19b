/**
 * Libraries written against pg.Pool run unchanged on the drop-in `Pool`: Kysely's PostgresDialect
 * and Drizzle's node-postgres driver, against the real PostgreSQL. Every check reads the rows back
 * through a separate pg.Client, so what is asserted is what the database holds.
 */
import { drizzle } from 'drizzle-orm/node-postgres';
import { eq, sql } from 'drizzle-orm';
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import { Kysely, PostgresDialect } from 'kysely';
import * as pg from 'pg';
import { Pool } from '../../adapters/pg';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
// Per process: two jest runs on one server never share a table.
const TABLE = `lib_items_${process.pid}`;

let admin: pg.Client;
let pool: Pool;
let warn: jest.Mock;

beforeAll(async () => {
  admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await admin.query(`CREATE TABLE ${TABLE} (id integer PRIMARY KEY, name text NOT NULL)`);
});

afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await admin.end();
});

beforeEach(async () => {
  await admin.query(`TRUNCATE ${TABLE}`);
  warn = jest.fn();
  pool = new Pool({ connectionString: PG_URL, max: 4, leasepool: { logger: { warn, error: jest.fn() }, endTimeoutMs: 2_000 } });
});

afterEach(async () => {
  await pool.end();
  // The libraries give back every client they check out, and never touch one after release.
  expect(pool.useAfterReleaseCount).toBe(0);
  expect(warn).not.toHaveBeenCalled();
});

async function rows(): Promise<Array<{ id: number; name: string }>> {
  return (await admin.query<{ id: number; name: string }>(`SELECT id, name FROM ${TABLE} ORDER BY id`)).rows;
}

describe("Kysely's PostgresDialect", () => {
  interface Database {
    [TABLE]: { id: number; name: string };
  }
  const kysely = (): Kysely<Database> => new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });

  test('select, insert and a committed transaction', async () => {
    const db = kysely();
    const selected = await db.selectNoFrom((eb) => eb.lit(41).as('n')).execute();
    expect(selected).toEqual([{ n: 41 }]);
    await db.insertInto(TABLE).values({ id: 1, name: 'one' }).execute();
    await db.transaction().execute(async (trx) => {
      await trx.insertInto(TABLE).values({ id: 2, name: 'two' }).execute();
      await trx.updateTable(TABLE).set({ name: 'uno' }).where('id', '=', 1).execute();
    });
    expect(await rows()).toEqual([
      { id: 1, name: 'uno' },
      { id: 2, name: 'two' },
    ]);
    const read = await db.selectFrom(TABLE).select(['id', 'name']).where('id', '=', 2).execute();
    expect(read).toEqual([{ id: 2, name: 'two' }]);
  });

  test('a transaction whose callback throws is rolled back, and the error is the one thrown', async () => {
    const db = kysely();
    const boom = new Error('boom');
    await expect(
      db.transaction().execute(async (trx) => {
        await trx.insertInto(TABLE).values({ id: 3, name: 'gone' }).execute();
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await rows()).toEqual([]);
    // The client went back clean: the next transaction commits.
    await db.transaction().execute((trx) => trx.insertInto(TABLE).values({ id: 4, name: 'kept' }).execute());
    expect(await rows()).toEqual([{ id: 4, name: 'kept' }]);
  });

  test('savepoints of a controlled transaction: only the inner work is undone', async () => {
    const db = kysely();
    const trx = await db.startTransaction().execute();
    await trx.insertInto(TABLE).values({ id: 5, name: 'outer' }).execute();
    const inner = await trx.savepoint('inner').execute();
    await inner.insertInto(TABLE).values({ id: 6, name: 'inner' }).execute();
    await inner.rollbackToSavepoint('inner').execute();
    await trx.insertInto(TABLE).values({ id: 7, name: 'after' }).execute();
    await trx.commit().execute();
    expect(await rows()).toEqual([
      { id: 5, name: 'outer' },
      { id: 7, name: 'after' },
    ]);
  });
});

describe("Drizzle's node-postgres driver", () => {
  const items = pgTable(TABLE, { id: integer('id').primaryKey(), name: text('name').notNull() });
  const orm = () => drizzle({ client: pool as unknown as pg.Pool });

  test('select, insert and a committed transaction', async () => {
    const db = orm();
    const [selected] = (await db.execute<{ n: number }>(sql`SELECT 41 AS n`)).rows;
    expect(selected).toEqual({ n: 41 });
    await db.insert(items).values({ id: 1, name: 'one' });
    await db.transaction(async (tx) => {
      await tx.insert(items).values({ id: 2, name: 'two' });
      await tx.update(items).set({ name: 'uno' }).where(eq(items.id, 1));
    });
    expect(await rows()).toEqual([
      { id: 1, name: 'uno' },
      { id: 2, name: 'two' },
    ]);
    expect(await db.select().from(items).where(eq(items.id, 2))).toEqual([{ id: 2, name: 'two' }]);
  });

  test('a transaction whose callback throws is rolled back, and the error is the one thrown', async () => {
    const db = orm();
    const boom = new Error('boom');
    await expect(
      db.transaction(async (tx) => {
        await tx.insert(items).values({ id: 3, name: 'gone' });
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await rows()).toEqual([]);
    await db.transaction((tx) => tx.insert(items).values({ id: 4, name: 'kept' }));
    expect(await rows()).toEqual([{ id: 4, name: 'kept' }]);
  });

  test('a nested transaction is a savepoint: a failing inner one is undone, the outer one commits', async () => {
    const db = orm();
    await db.transaction(async (tx) => {
      await tx.insert(items).values({ id: 5, name: 'outer' });
      await expect(
        tx.transaction(async (inner) => {
          await inner.insert(items).values({ id: 6, name: 'inner' });
          throw new Error('inner fails');
        }),
      ).rejects.toThrow('inner fails');
      await tx.transaction((inner) => inner.insert(items).values({ id: 7, name: 'inner kept' }));
    });
    expect(await rows()).toEqual([
      { id: 5, name: 'outer' },
      { id: 7, name: 'inner kept' },
    ]);
  });
});
