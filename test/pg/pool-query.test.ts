/**
 * `pool.query(sql, params)` on the core pool with the pg adapter: one statement in a lease of its
 * own, or on the ambient lease inside a scope (so it takes part in the transaction).
 * Tables: pool_query_pg (created and dropped here).
 */
import { pgAdapter } from '../../adapters/pg';
import { createPool, LeaseMisuseError } from '../../src';
import { fakeAdapter } from '../helpers/fake-adapter';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const pool = createPool(pgAdapter(PG_URL), { name: 'pg_query', max: 2 });

beforeAll(async () => {
  await pool.query('DROP TABLE IF EXISTS pool_query_pg');
  await pool.query('CREATE TABLE pool_query_pg (id int PRIMARY KEY)');
});
afterAll(async () => {
  await pool.query('DROP TABLE IF EXISTS pool_query_pg');
  await pool.close({ timeoutMs: 1_000 });
});

test('runs one statement with parameters and returns pg\'s QueryResult, typed by the caller', async () => {
  const result = await pool.query<{ n: number }>('SELECT $1::int + 1 AS n', [41]);
  const n: number | undefined = result.rows[0]?.n;
  expect(n).toBe(42);
  expect(result.command).toBe('SELECT');
  expect(pool.stats().active).toBe(0);
});

test('a failed statement rejects with pg\'s error and releases its lease', async () => {
  await expect(pool.query('SELECT nope FROM pool_query_pg')).rejects.toMatchObject({ code: '42703' });
  expect(pool.stats().active).toBe(0);
});

test('inside withTx it runs on the transaction\'s connection: rolled back with it', async () => {
  await expect(
    pool.withTx(async () => {
      await pool.query('INSERT INTO pool_query_pg VALUES ($1)', [1]);
      const seen = await pool.query<{ c: number }>('SELECT count(*)::int AS c FROM pool_query_pg');
      expect(seen.rows[0]?.c).toBe(1);
      expect(pool.stats().active).toBe(1);
      throw new Error('undo');
    }),
  ).rejects.toThrow('undo');
  const after = await pool.query<{ c: number }>('SELECT count(*)::int AS c FROM pool_query_pg');
  expect(after.rows[0]?.c).toBe(0);
});

test('an adapter without a query function rejects with LeaseMisuseError', async () => {
  const fake = createPool(fakeAdapter(), { name: 'no_query' });
  await expect(fake.query('SELECT 1')).rejects.toBeInstanceOf(LeaseMisuseError);
  await fake.close();
});
