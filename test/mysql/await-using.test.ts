import { createPool } from '../../src';
import { mysqlAdapter } from '../../adapters/mysql2';

const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

test('`await using` on a leased mysql2 connection ends the lease and keeps the connection pooled', async () => {
  const pool = createPool(mysqlAdapter(MYSQL_URL), { name: 'await_using', max: 1, leakDetectionMs: 0 });
  try {
    const lease = await pool.acquire();
    const threadId = await (async () => {
      await using conn = lease.conn;
      const [rows] = await conn.query('SELECT CONNECTION_ID() AS id');
      return (rows as Array<{ id: number }>)[0]!.id;
    })();
    expect(lease.state).toBe('released');
    // mysql2's own asyncDispose would have ended the socket: the same connection serves the next lease.
    const again = await pool.withLease(async (conn) => {
      const [rows] = await conn.query('SELECT CONNECTION_ID() AS id');
      return (rows as Array<{ id: number }>)[0]!.id;
    });
    expect(again).toBe(threadId);
    expect(pool.stats()).toMatchObject({ size: 1, active: 0 });
  } finally {
    await pool.close();
  }
});
