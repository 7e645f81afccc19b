/**
 * Issue 17, adversarial, on PGlite: a hand-typed ROLLBACK inside withTx (through `exec`, PGlite's
 * multi-statement API) must not leave withTx resolving with only the work after it committed.
 * The PGlite instance itself, read between scopes, is the judge.
 */
import { PGlite } from '@electric-sql/pglite';
import { createPool } from '../../src/index';
import { pgliteAdapter } from '../../adapters/pglite';

let db: PGlite;

beforeAll(async () => {
  db = await PGlite.create();
  await db.exec('CREATE TABLE adv_rows (id int PRIMARY KEY)');
});

afterAll(async () => {
  await db.close();
});

async function ids(): Promise<number[]> {
  return (await db.query<{ id: number }>('SELECT id FROM adv_rows ORDER BY id')).rows.map((r) => r.id);
}

test('a ROLLBACK sent with exec inside withTx: the withTx never resolves with only the work after it committed', async () => {
  const pool = createPool(pgliteAdapter(db), { metrics: false, leakDetectionMs: 0 });
  try {
    const outcome = await pool
      .withTx(async (conn) => {
        await conn.query('INSERT INTO adv_rows (id) VALUES (1)');
        await conn.exec('SELECT 1; ROLLBACK').catch(() => undefined);
        await conn.query('INSERT INTO adv_rows (id) VALUES (2)').catch(() => undefined);
        return 'done';
      })
      .then(
        () => 'resolved',
        () => 'rejected',
      );
    expect(await ids()).toEqual(outcome === 'resolved' ? [1, 2] : []);
  } finally {
    await pool.close({ timeoutMs: 2_000 });
  }
});

test('a session SET by one borrower does not reach the next one with default options (its write must not fail)', async () => {
  const pool = createPool(pgliteAdapter(db), { metrics: false, leakDetectionMs: 0 });
  try {
    await db.exec('TRUNCATE adv_rows');
    await pool.withLease(async (conn) => {
      await conn.query('SET default_transaction_read_only = on');
    });
    const outcome = await pool.withLease((conn) => conn.query('INSERT INTO adv_rows (id) VALUES (9)')).then(
      () => 'resolved',
      (err: unknown) => String(err),
    );
    expect(outcome).toBe('resolved');
    expect(await ids()).toEqual([9]);
  } finally {
    await pool.close({ timeoutMs: 2_000 });
    await db.exec('RESET ALL');
  }
});
