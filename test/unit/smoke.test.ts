import { createPool, LeaseReleasedError } from '../../src';
import { fakeAdapter } from '../helpers/fake-adapter';

test('smoke: withLease, withTx, release path', async () => {
  const adapter = fakeAdapter();
  const pool = createPool(adapter, { max: 2, leakDetectionMs: 0 });
  const r = await pool.withLease(async (conn) => {
    await conn.query('SELECT 1');
    return 42;
  });
  expect(r).toBe(42);
  await pool.withTx(async (conn) => {
    await conn.query('INSERT');
    await pool.withTx(async (c2) => {
      await c2.query('X');
    });
  });
  const lease = await pool.acquire();
  const conn = lease.conn;
  await lease.release();
  expect(() => conn.query('SELECT 1')).toThrow(LeaseReleasedError);
  expect(pool.stats()).toMatchObject({ active: 0, size: 1, idle: 1 });
  expect(adapter.db.connections[0]!.log).toEqual(['SELECT 1', 'BEGIN', 'INSERT', 'SAVEPOINT lp_sp_1', 'X', 'RELEASE SAVEPOINT lp_sp_1', 'COMMIT']);
  await pool.close();
});
