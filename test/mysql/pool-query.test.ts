/**
 * `pool.query(sql, params)` on the core pool with the mysql2 adapter: mysql2's `[rows, fields]`,
 * a lease of its own, or the ambient lease inside a scope.
 * Tables: pool_query_my (created and dropped here).
 */
import type { RowDataPacket } from 'mysql2/promise';
import { mysqlAdapter } from '../../adapters/mysql2';
import { createPool } from '../../src';

const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const pool = createPool(mysqlAdapter(MYSQL_URL), { name: 'my_query', max: 2 });

beforeAll(async () => {
  await pool.query('DROP TABLE IF EXISTS pool_query_my');
  await pool.query('CREATE TABLE pool_query_my (id INT PRIMARY KEY) ENGINE=InnoDB');
});
afterAll(async () => {
  await pool.query('DROP TABLE IF EXISTS pool_query_my');
  await pool.close({ timeoutMs: 1_000 });
});

test('runs one statement with parameters and returns [rows, fields]', async () => {
  const [rows, fields] = await pool.query<RowDataPacket[]>('SELECT ? + 1 AS n', [41]);
  expect(Number(rows[0]?.['n'])).toBe(42);
  expect(fields.map((f) => f.name)).toEqual(['n']);
  expect(pool.stats().active).toBe(0);
});

test('a failed statement rejects with mysql2\'s error and releases its lease', async () => {
  await expect(pool.query('SELECT nope FROM pool_query_my')).rejects.toMatchObject({ errno: 1054 });
  expect(pool.stats().active).toBe(0);
});

test('inside withTx it joins the transaction: rolled back with it', async () => {
  await expect(
    pool.withTx(async () => {
      await pool.query('INSERT INTO pool_query_my VALUES (?)', [1]);
      const [seen] = await pool.query<RowDataPacket[]>('SELECT count(*) AS c FROM pool_query_my');
      expect(Number(seen[0]?.['c'])).toBe(1);
      throw new Error('undo');
    }),
  ).rejects.toThrow('undo');
  const [after] = await pool.query<RowDataPacket[]>('SELECT count(*) AS c FROM pool_query_my');
  expect(Number(after[0]?.['c'])).toBe(0);
});
