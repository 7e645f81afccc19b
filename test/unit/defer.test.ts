/**
 * The defer stack: LIFO, every cleanup runs, the body's error wins (cleanup errors hang off it),
 * cleanup-only failures become CleanupError, and each failure is counted.
 */
import { CleanupError, LeaseReleasedError, suppressedErrors } from '../../src';
import { closeAll, metric, rejection, setup } from '../helpers/unit';

afterEach(closeAll);

test('cleanups run last-in-first-out, awaited one after another, before the connection goes back', async () => {
  const { pool } = setup();
  const order: string[] = [];
  await pool.withLease(async (conn, lease) => {
    lease.defer(() => {
      order.push('first registered');
    });
    lease.defer(async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      order.push('second (async)');
    });
    lease.defer(async () => {
      // Cleanups may still use the connection.
      await conn.query('CLEANUP');
      order.push(`third, lease ${lease.state}, active ${pool.stats().active}`);
    });
    order.push('body');
  });
  expect(order).toEqual(['body', 'third, lease active, active 1', 'second (async)', 'first registered']);
  expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
});

test('every cleanup runs even when some throw', async () => {
  const { pool } = setup();
  const ran: number[] = [];
  const err = await rejection(
    pool.withLease((_conn, lease) => {
      for (let i = 1; i <= 4; i++) {
        lease.defer(() => {
          ran.push(i);
          if (i % 2 === 0) throw new Error(`cleanup ${i}`);
        });
      }
    }),
  );
  expect(ran).toEqual([4, 3, 2, 1]);
  expect(err).toBeInstanceOf(CleanupError);
  expect((err as CleanupError).errors.map((e) => (e as Error).message)).toEqual(['cleanup 4', 'cleanup 2']);
});

test('body threw: the caller gets the body error itself, cleanup errors in suppressedErrors()', async () => {
  const { pool, registry } = setup({ name: 'defer_body' });
  const body = new Error('body');
  const c1 = new Error('c1');
  const c2 = new Error('c2');
  const err = await rejection(
    pool.withLease(async (_conn, lease) => {
      lease.defer(() => {
        throw c1;
      });
      lease.defer(async () => Promise.reject(c2));
      throw body;
    }),
  );
  expect(err).toBe(body);
  expect(suppressedErrors(err)).toEqual([c2, c1]);
  expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'defer_body', kind: 'cleanup_error' })).toBe(2);
  expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
});

test('only cleanups threw: CleanupError (CLEANUP_FAILED) with all errors, counted per error', async () => {
  const { pool, registry } = setup({ name: 'defer_only' });
  const c1 = new Error('c1');
  const c2 = 'not even an Error';
  const err = await rejection(
    pool.withLease((_conn, lease) => {
      lease.defer(() => {
        throw c1;
      });
      lease.defer(() => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error
        throw c2;
      });
      return 'result is dropped';
    }),
  );
  expect(err).toBeInstanceOf(CleanupError);
  expect(err).toMatchObject({ code: 'CLEANUP_FAILED', errors: [c2, c1], cause: c2 });
  expect((err as Error).message).toContain('c1');
  expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'defer_only', kind: 'cleanup_error' })).toBe(2);
  // The connection still went back.
  expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
});

test('manual release(): rejects with CleanupError, connection returned anyway', async () => {
  const { pool } = setup();
  const lease = await pool.acquire();
  const c1 = new Error('c1');
  lease.defer(() => {
    throw c1;
  });
  const err = await rejection(lease.release());
  expect(err).toMatchObject({ code: 'CLEANUP_FAILED', errors: [c1] });
  expect(lease.state).toBe('released');
  expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
  // A second release does not rerun cleanups nor rethrow.
  await expect(lease.release()).resolves.toBeUndefined();
});

test('cleanups run once; defer() after release throws', async () => {
  const { pool } = setup();
  let runs = 0;
  const lease = await pool.acquire();
  lease.defer(() => {
    runs++;
  });
  await lease.release();
  await lease.release();
  expect(runs).toBe(1);
  expect(() => lease.defer(() => undefined)).toThrow(LeaseReleasedError);
  expect(() => lease.defer('nope' as unknown as () => void)).toThrow(LeaseReleasedError);
});

test('defer() takes only functions', async () => {
  const { pool } = setup();
  await pool.withLease((_conn, lease) => {
    expect(() => lease.defer('nope' as unknown as () => void)).toThrow(TypeError);
  });
});

test('a cleanup registered in a joined scope runs when the owning scope releases', async () => {
  const { pool } = setup();
  const order: string[] = [];
  await pool.withLease(async (_c, lease) => {
    lease.defer(() => order.push('outer'));
    await pool.withLease((_c2, joined) => {
      joined.defer(() => order.push('inner'));
    });
    order.push('outer body end');
  });
  expect(order).toEqual(['outer body end', 'inner', 'outer']);
});

test('withTx: cleanup errors hang off the transaction error too', async () => {
  const { pool, db } = setup();
  const body = new Error('tx body');
  const c1 = new Error('c1');
  const err = await rejection(
    pool.withTx(async (conn, tx) => {
      tx.lease.defer(() => {
        throw c1;
      });
      await conn.query('INSERT');
      throw body;
    }),
  );
  expect(err).toBe(body);
  expect(suppressedErrors(err)).toEqual([c1]);
  expect(db.connections[0]!.log).toEqual(['BEGIN', 'INSERT', 'ROLLBACK']);
});
