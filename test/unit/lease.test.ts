/**
 * Leases: acquire options, scoped release however the body ends, idempotent release,
 * `await using`, state/id, and the ambient join.
 */
import { LeaseReleasedError, suppressedErrors } from '../../src';
import { closeAll, deferred, rejection, setup } from '../helpers/unit';

afterEach(closeAll);

describe('acquire', () => {
  test('acquire() gives an active lease; release() gives the connection back', async () => {
    const { pool, db } = setup({ max: 2 });
    const lease = await pool.acquire({ signal: new AbortController().signal, timeoutMs: 500 });
    expect(lease.state).toBe('active');
    expect(pool.stats()).toMatchObject({ size: 1, active: 1, idle: 0 });
    await lease.conn.query('SELECT 1');
    await lease.release();
    expect(lease.state).toBe('released');
    expect(pool.stats()).toMatchObject({ size: 1, active: 0, idle: 1 });
    expect(db.connections).toHaveLength(1);
    expect(db.connections[0]!.log).toEqual(['SELECT 1']);
  });

  test('lease ids are unique and increasing', async () => {
    const { pool } = setup({ max: 3 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    expect(Number.isInteger(a.id)).toBe(true);
    expect(b.id).toBeGreaterThan(a.id);
    await a.release();
    const c = await pool.acquire();
    expect(c.id).toBeGreaterThan(b.id);
    await Promise.all([b.release(), c.release()]);
  });
});

describe('withLease', () => {
  test('releases on return and passes the result through', async () => {
    const { pool } = setup();
    let seen: { state: string } | undefined;
    const result = await pool.withLease(async (conn, lease) => {
      seen = lease;
      expect(lease.state).toBe('active');
      await conn.query('SELECT 1');
      return 'ok';
    });
    expect(result).toBe('ok');
    expect(seen?.state).toBe('released');
    expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
  });

  test('the body runs with one frame of leasepool\'s core beneath it, idle connection or after a wait', async () => {
    // A driver that captures a stack per statement (mysql2's `trace`) pays for every frame the
    // capture walks: the pool's frames under the body are pure cost to it.
    const { pool } = setup({ max: 1 });
    const poolFrames = (): number => (new Error().stack ?? '').split('\n').filter((line) => /[\\/]src[\\/][\w-]+\.[tj]s:/.test(line)).length;
    const idle = await pool.withLease(poolFrames);
    const held = await pool.acquire();
    const afterWait = pool.withLease(poolFrames);
    await held.release();
    expect([idle, await afterWait]).toEqual([1, 1]);
  });

  test('a synchronous callback value is returned too', async () => {
    const { pool } = setup();
    await expect(pool.withLease(() => 7)).resolves.toBe(7);
    expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
  });

  test('releases on async throw and rethrows the same error', async () => {
    const { pool } = setup();
    const boom = new Error('async boom');
    const err = await rejection(
      pool.withLease(async (conn) => {
        await conn.query('SELECT 1');
        throw boom;
      }),
    );
    expect(err).toBe(boom);
    expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
  });

  test('releases on a synchronous throw (before any promise exists)', async () => {
    const { pool } = setup();
    const boom = new Error('sync boom');
    const result = pool.withLease(() => {
      throw boom;
    });
    expect(result).toBeInstanceOf(Promise);
    expect(await rejection(result)).toBe(boom);
    expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
  });

  test('a thrown non-Error value is rethrown as is', async () => {
    const { pool } = setup();
    // eslint-disable-next-line @typescript-eslint/only-throw-error
    expect(await rejection(pool.withLease(() => Promise.reject('plain string')))).toBe('plain string');
    expect(pool.stats().active).toBe(0);
  });
});

describe('idempotent release', () => {
  test('a second release() is harmless and the connection is never handed out twice', async () => {
    const { pool, db } = setup({ max: 2 });
    const lease = await pool.acquire();
    await lease.release();
    await expect(lease.release()).resolves.toBeUndefined();
    expect(pool.stats()).toMatchObject({ size: 1, idle: 1, active: 0 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    expect(a.conn.id).not.toBe(b.conn.id);
    expect(db.connections).toHaveLength(2);
    expect(pool.stats()).toMatchObject({ size: 2, idle: 0, active: 2 });
    await a.release();
    await b.release();
  });

  test('concurrent release() calls share one release; with max 1 the next acquire waits for a real release', async () => {
    const { pool, db } = setup({ max: 1 });
    const first = await pool.acquire();
    await Promise.all([first.release(), first.release(), first[Symbol.asyncDispose]()]);
    const a = await pool.acquire();
    // If the double release had returned the connection twice, this would get it too.
    await expect(pool.acquire({ timeoutMs: 30 })).rejects.toMatchObject({ code: 'ACQUIRE_TIMEOUT' });
    const waiting = pool.acquire({ timeoutMs: 1_000 });
    expect(pool.stats().pending).toBe(1);
    await first.release(); // a stale handle: still harmless, does not release `a`'s connection
    expect(a.state).toBe('active');
    expect(pool.stats()).toMatchObject({ active: 1, pending: 1 });
    await a.release();
    const b = await waiting;
    expect(b.conn.id).toBe(db.connections[0]!.id);
    await b.release();
    expect(db.connections).toHaveLength(1);
  });
});

describe('await using', () => {
  test('Symbol.asyncDispose releases at the end of the block', async () => {
    const { pool } = setup();
    let outer: { state: string } | undefined;
    {
      await using lease = await pool.acquire();
      outer = lease;
      await lease.conn.query('SELECT 1');
      expect(pool.stats().active).toBe(1);
    }
    expect(outer.state).toBe('released');
    expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
  });

  test('a body error and a disposer error give a SuppressedError-shaped error (swc helpers work)', async () => {
    const { pool } = setup();
    const bodyError = new Error('body failed');
    const cleanupError = new Error('cleanup failed');
    let caught: unknown;
    try {
      await using lease = await pool.acquire();
      lease.defer(() => {
        throw cleanupError;
      });
      throw bodyError;
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeDefined();
    expect(String(caught)).not.toMatch(/is not defined/);
    expect(caught).not.toBeInstanceOf(ReferenceError);
    // TC39 shape: { error: <disposal error>, suppressed: <body error> }.
    const shaped = caught as { name: string; error: unknown; suppressed: unknown };
    expect(shaped.name).toBe('SuppressedError');
    expect(shaped.suppressed).toBe(bodyError);
    expect(shaped.error).toMatchObject({ code: 'CLEANUP_FAILED', errors: [cleanupError] });
    expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
  });

  test('only the body throws: the body error comes out unchanged', async () => {
    const { pool } = setup();
    const bodyError = new Error('body only');
    let caught: unknown;
    try {
      await using lease = await pool.acquire();
      void lease;
      throw bodyError;
    } catch (err) {
      caught = err;
    }
    expect(caught).toBe(bodyError);
    expect(suppressedErrors(caught)).toEqual([]);
    expect(pool.stats().active).toBe(0);
  });
});

describe('ambient join', () => {
  test('withLease inside withLease of the same pool joins: same connection, one connection total', async () => {
    const { pool, db } = setup({ max: 3 });
    await pool.withLease(async (outerConn, outerLease) => {
      const inner = await pool.withLease(async (innerConn, innerLease) => {
        expect(innerLease).toBe(outerLease);
        expect(innerConn).toBe(outerConn);
        await innerConn.query('INNER');
        return innerConn.id;
      });
      expect(inner).toBe(outerConn.id);
      // The inner scope did not release the shared lease.
      expect(outerLease.state).toBe('active');
      await outerConn.query('OUTER');
    });
    expect(db.connections).toHaveLength(1);
    expect(db.connections[0]!.log).toEqual(['INNER', 'OUTER']);
    expect(pool.stats()).toMatchObject({ size: 1, active: 0 });
  });

  test('an inner throw reaches the outer scope without releasing the lease', async () => {
    const { pool } = setup({ max: 1 });
    const boom = new Error('inner');
    await pool.withLease(async (conn, lease) => {
      await expect(pool.withLease(async () => Promise.reject(boom))).rejects.toBe(boom);
      expect(lease.state).toBe('active');
      await conn.query('still usable');
    });
  });

  test('withLease of a different pool inside gets its own connection', async () => {
    const a = setup({ max: 1 });
    const b = setup({ max: 1 });
    await a.pool.withLease(async (connA, leaseA) => {
      await b.pool.withLease(async (connB, leaseB) => {
        expect(leaseB).not.toBe(leaseA);
        expect(connB).not.toBe(connA);
        await connB.query('B');
        // Still joins its own pool from inside the other pool's scope.
        await a.pool.withLease(async (again) => expect(again).toBe(connA));
      });
    });
    expect(a.db.connections).toHaveLength(1);
    expect(b.db.connections).toHaveLength(1);
    expect(b.db.connections[0]!.log).toEqual(['B']);
  });

  test('work that outlives its scope fails: it neither joins the released lease nor takes another', async () => {
    const { pool, db } = setup({ max: 2 });
    const later = deferred();
    let escaped: Promise<number> | undefined;
    await pool.withLease(async (conn) => {
      await conn.query('SCOPE');
      escaped = later.promise.then(() => pool.withLease(async (c) => c.id));
    });
    later.resolve();
    // Falling through to a fresh lease would let work of an ended scope run outside it.
    await expect(escaped!).rejects.toBeInstanceOf(LeaseReleasedError);
    expect(db.connections).toHaveLength(1);
    expect(pool.stats().active).toBe(0);
  });

  test('a joined lease cannot be used after the owner released it', async () => {
    const { pool } = setup();
    let inner: { query(sql: string): unknown } | undefined;
    await pool.withLease(async () => {
      await pool.withLease(async (conn) => {
        inner = conn;
      });
    });
    expect(() => inner!.query('SELECT 1')).toThrow(LeaseReleasedError);
  });
});
