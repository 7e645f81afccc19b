/**
 * A transaction is all or nothing, whatever the body does (the core's rules on the in-memory
 * adapter; the same classes of behaviour run against the real servers in
 * test/pg/tx-all-or-nothing.test.ts and test/mysql/tx-all-or-nothing.test.ts):
 * scopes of a revoked or released lease fail, a transaction the server rolled back refuses what
 * the body sends afterwards, un-awaited statements and nested scopes are waited for or cut off,
 * cleanups run under the deadline, and the small rules of option checking and error identity.
 */
import {
  CleanupError,
  ConfigError,
  createPool,
  LeaseReleasedError,
  LeaseRevokedError,
  LeaseTimeoutError,
  shutdownOnSignals,
  TxAbortedError,
  TxEndedError,
} from '../../src';
import { FakeError, type FakeConnection } from '../helpers/fake-adapter';
import { closeAll, deferred, metric, rejection, settle, setup, waitFor } from '../helpers/unit';

afterEach(closeAll);

/** Every statement sent on any connection of the fake database, in order. */
function allStatements(db: { connections: readonly FakeConnection[] }): string[] {
  return db.connections.flatMap((c) => c.log);
}

describe('a scope whose lease has ended fails instead of finding another connection', () => {
  test('after a deadline revoked the outer withTx, withTx / withLease / acquire inside it reject LEASE_REVOKED and send nothing', async () => {
    const { pool, db } = setup({ max: 3 });
    const inner = deferred<Array<{ ok: boolean; error?: unknown }>>();
    const outer = pool.withTx(
      async () => {
        await waitFor('the deadline revoked the lease', () => pool.stats().active === 0);
        inner.resolve(
          await Promise.all([
            settle(pool.withTx((conn) => conn.query('NESTED TX'))),
            settle(pool.withLease((conn) => conn.query('NESTED LEASE'))),
            settle(pool.withTx((conn) => conn.query('NEW TX'), { propagation: 'requiresNew' })),
            settle(pool.acquire()),
          ]),
        );
      },
      { timeoutMs: 30 },
    );
    expect(await rejection(outer)).toBeInstanceOf(LeaseTimeoutError);
    const results = await inner.promise;
    for (const r of results) expect((r as { error?: unknown }).error).toBeInstanceOf(LeaseRevokedError);
    expect(allStatements(db).filter((s) => s.startsWith('NESTED') || s.startsWith('NEW'))).toEqual([]);
    expect(db.connections).toHaveLength(1);
  });

  test('after the outer scope released its lease, a joining withTx rejects LEASE_RELEASED; a requiresNew one is a transaction of its own', async () => {
    const { pool, db } = setup({ max: 2 });
    const later = deferred();
    let joined: Promise<unknown> | undefined;
    let separate: Promise<unknown> | undefined;
    await pool.withLease(async () => {
      joined = later.promise.then(() => pool.withTx((conn) => conn.query('JOINED')));
      separate = later.promise.then(() => pool.withTx((conn) => conn.query('SEPARATE'), { propagation: 'requiresNew' }));
    });
    later.resolve();
    expect(await rejection(joined!)).toBeInstanceOf(LeaseReleasedError);
    await separate;
    expect(allStatements(db).filter((s) => s === 'JOINED')).toEqual([]);
    expect(allStatements(db)).toContain('SEPARATE');
  });
});

describe('a transaction the server rolled back cannot commit', () => {
  // The fake's retryable error stands for a MySQL deadlock: the server has ended the whole transaction.
  const serverEnds = (err: unknown): boolean => err instanceof FakeError && err.retryable;
  /** A pool over a fake database whose adapter says which errors end the transaction on the server. */
  const deadlockingPool = (): { pool: ReturnType<typeof createPool<FakeConnection>>; log: () => string[] } => {
    const base = setup({ max: 1 });
    const pool = createPool({ ...base.adapter, endsTransaction: serverEnds }, { leakDetectionMs: 0, logger: base.pool.logger });
    pools.push(pool);
    return { pool, log: () => base.db.connections[0]!.log };
  };
  const pools: Array<{ close(o: { timeoutMs: number }): Promise<unknown> }> = [];
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 50 })));
  });

  test('a body that catches the error and carries on: its later statements are refused, withTx rejects with the server error', async () => {
    const { pool, log } = deadlockingPool();
    let refused: unknown;
    const err = await rejection(
      pool.withTx(async (conn) => {
        await conn.query('BEFORE');
        await conn.query('RETRYABLE').catch(() => undefined);
        try {
          await conn.query('AFTER');
        } catch (e) {
          refused = e;
        }
        return 'done';
      }),
    );
    expect(err).toBeInstanceOf(FakeError);
    expect((err as FakeError).retryable).toBe(true);
    expect(refused).toBeInstanceOf(TxAbortedError);
    expect((refused as TxAbortedError).code).toBe('TX_ABORTED');
    expect(log()).toEqual(['BEGIN', 'BEFORE', 'RETRYABLE', 'ROLLBACK']);
  });

  test('with retries, the same body is rerun (the refused statement stands for the deadlock), and the rerun commits', async () => {
    const { pool, log } = deadlockingPool();
    let runs = 0;
    await pool.withTx(
      async (conn) => {
        runs++;
        if (runs === 1) await conn.query('RETRYABLE').catch(() => undefined);
        await conn.query(`WORK ${runs}`); // refused in run 1: the body lets that TX_ABORTED propagate
      },
      { retries: 2, retryBaseDelayMs: 1 },
    );
    expect(runs).toBe(2);
    expect(log()).toEqual(['BEGIN', 'RETRYABLE', 'ROLLBACK', 'BEGIN', 'WORK 2', 'COMMIT']);
  });

  test('in a savepoint: no ROLLBACK TO is sent for a transaction that is gone, and the outer withTx rejects though it caught the inner error', async () => {
    const { pool, log } = deadlockingPool();
    const err = await rejection(
      pool.withTx(async (conn) => {
        await conn.query('OUTER');
        await pool.withTx((inner) => inner.query('RETRYABLE')).catch(() => undefined);
        await conn.query('OUTER AFTER').catch(() => undefined);
      }),
    );
    expect((err as FakeError).retryable).toBe(true);
    expect(log()).toEqual(['BEGIN', 'OUTER', 'SAVEPOINT lp_sp_1', 'RETRYABLE', 'ROLLBACK']);
  });
});

describe('what the body did not await is waited for or cut off', () => {
  test('an un-awaited nested withTx still running when the outer throws: its later statements are refused (TX_ENDED), none runs after ROLLBACK', async () => {
    const { pool, db } = setup({ max: 1 });
    const innerDone = deferred<unknown>();
    const boom = new Error('outer fails');
    const err = await rejection(
      pool.withTx(async (conn) => {
        await conn.query('OUTER');
        void pool
          .withTx(async (inner) => {
            await inner.query('SLEEP 20');
            await inner.query('INNER LATE');
          })
          .then(innerDone.resolve, innerDone.resolve);
        throw boom;
      }),
    );
    expect(err).toBe(boom);
    expect(await innerDone.promise).toBeInstanceOf(TxEndedError);
    const log = db.connections[0]!.log;
    expect(log).not.toContain('INNER LATE');
    expect(log.indexOf('ROLLBACK')).toBe(log.length - 1);
  });

  test('an un-awaited nested withTx that fails after the outer body returned: the outer rejects TX_ABORTED and commits nothing', async () => {
    const { pool, db } = setup({ max: 1 });
    const err = await rejection(
      pool.withTx(async (conn) => {
        await conn.query('DEBIT');
        void pool
          .withTx(async (inner) => {
            await inner.query('SLEEP 10');
            await inner.query('FAIL');
          })
          .catch(() => undefined);
      }),
    );
    expect(err).toBeInstanceOf(TxAbortedError);
    expect(db.connections[0]!.log).not.toContain('COMMIT');
  });

  test('an un-awaited statement that fails after the body returned: never committed around it', async () => {
    const { pool, db } = setup({ max: 1 }, { reportsTxStatus: false });
    const err = await rejection(
      pool.withTx(async (conn) => {
        await conn.query('DEBIT');
        void conn.query('SLEEP 10').then(() => conn.query('FAIL')).catch(() => undefined);
        void conn.query('SLEEP 5').catch(() => undefined);
      }),
    );
    expect(err).toBeInstanceOf(TxAbortedError);
    expect(db.connections[0]!.log).not.toContain('COMMIT');
  });

  test('an un-awaited statement that succeeds is waited for, then committed with the rest', async () => {
    const { pool, db } = setup({ max: 1 });
    await pool.withTx(async (conn) => {
      await conn.query('DEBIT');
      void conn.query('SLEEP 10').then(() => undefined);
    });
    expect(db.connections[0]!.log).toEqual(['BEGIN', 'DEBIT', 'SLEEP 10', 'COMMIT']);
  });

  test('an un-awaited withLease joined inside a transaction cannot send after the transaction ended', async () => {
    const { pool, db } = setup({ max: 1 });
    const late = deferred<unknown>();
    await pool.withLease(async (conn) => {
      await pool.withTx(async () => {
        void pool.withLease(async (joined) => {
          await new Promise((r) => setTimeout(r, 10));
          await joined.query('LATE');
        }).then(late.resolve, late.resolve);
      });
      expect(await late.promise).toBeInstanceOf(TxEndedError);
      await conn.query('OUTSIDE'); // the lease's own scope goes on
    });
    expect(db.connections[0]!.log).toEqual(['BEGIN', 'COMMIT', 'OUTSIDE']);
  });
});

describe('deferred cleanups run under the deadline', () => {
  test('withLease({ timeoutMs }) whose cleanup never settles rejects at the deadline; the connection is reclaimed', async () => {
    const { pool, registry } = setup({ name: 'hung_cleanup', max: 1 });
    const t0 = performance.now();
    const err = await rejection(
      pool.withLease(
        async (conn, lease) => {
          lease.defer(() => new Promise(() => undefined));
          await conn.query('WORK');
        },
        { timeoutMs: 50 },
      ),
    );
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(err).toBeInstanceOf(CleanupError);
    expect((err as CleanupError).errors).toEqual([expect.any(LeaseTimeoutError)]);
    expect(pool.stats().active).toBe(0);
    expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'hung_cleanup', kind: 'deadline' })).toBe(1);
  });

  test('the deadline passes while the body still runs and its cleanup never settles: the caller still hears at the deadline', async () => {
    const { pool } = setup({ max: 1 });
    const t0 = performance.now();
    const err = await rejection(
      pool.withLease(
        async (conn, lease) => {
          lease.defer(() => new Promise(() => undefined));
          await conn.query('SLEEP 1000');
        },
        { timeoutMs: 30 },
      ),
    );
    expect(err).toBeInstanceOf(LeaseTimeoutError);
    expect(performance.now() - t0).toBeLessThan(900);
    expect(pool.stats().active).toBe(0);
  });

  test('a throwing deadline listener does not stop the reclaim: rolled back, destroyed, the caller told', async () => {
    const { pool, db } = setup({ max: 1 });
    pool.on('deadline', () => {
      throw new Error('listener failed');
    });
    const err = await rejection(
      pool.withTx((conn) => conn.query('SLEEP 1000'), { timeoutMs: 30 }),
    );
    expect(err).toBeInstanceOf(LeaseTimeoutError);
    await waitFor('the connection is closed', () => db.open.length === 0);
    expect(db.connections[0]!.log).toContain('ROLLBACK');
  });

  test('close() takes back a lease whose cleanup hangs, and its caller hears of it', async () => {
    const { pool } = setup({ max: 1 });
    const scope = settle(
      pool.withLease(async (_conn, lease) => {
        lease.defer(() => new Promise(() => undefined));
      }),
    );
    await waitFor('the scope is releasing', () => pool.stats().active === 1);
    expect(await pool.close({ timeoutMs: 20 })).toEqual({ released: 0, reclaimed: 1 });
    const result = await scope;
    expect(result.ok).toBe(false);
    expect((result as { error: unknown }).error).toBeInstanceOf(CleanupError);
  });
});

describe('the caller gets its own error object', () => {
  test('a frozen error thrown by the body, with a failing cleanup: the same object rejects', async () => {
    const { pool } = setup();
    const frozen = Object.freeze(new Error('frozen'));
    const err = await rejection(
      pool.withLease(async (_conn, lease) => {
        lease.defer(() => {
          throw new Error('cleanup failed');
        });
        throw frozen;
      }),
    );
    expect(err).toBe(frozen);
  });
});

describe('options are checked, every bad field named', () => {
  test('max: -1 names max, not the min it was never given', () => {
    const { adapter } = setup();
    const err = (() => {
      try {
        createPool(adapter, { max: -1 });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).fields).toEqual(['max']);
  });

  test('an unknown metrics sub-option is refused', () => {
    const { adapter, registry } = setup();
    expect(() => createPool(adapter, { metrics: { registry, bucketz: [1] } as never })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', fields: ['metrics.bucketz'] }),
    );
  });

  test('shutdownOnSignals: signals as a string, a negative timeoutMs and an unknown key are refused, nothing is registered', () => {
    const { pool } = setup();
    const before = process.listenerCount('S');
    expect(() => shutdownOnSignals(pool, { signals: 'SIGTERM' as never, timeoutMs: -1, exitt: true } as never)).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', fields: ['exitt', 'signals', 'timeoutMs'] }),
    );
    expect(process.listenerCount('S')).toBe(before);
    expect(() => shutdownOnSignals(pool, { signals: ['SIGNOPE' as never] })).toThrow(ConfigError);
  });

  test('shutdownOnSignals: an onClosed that throws still exits with 128 + the signal, no unhandled rejection', async () => {
    const { pool } = setup();
    const exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const off = shutdownOnSignals(pool, {
      signals: ['SIGUSR2'],
      timeoutMs: 10,
      onClosed: () => {
        throw new Error('report failed');
      },
    });
    try {
      process.emit('SIGUSR2', 'SIGUSR2');
      await waitFor('the process exits', () => exit.mock.calls.length === 1);
      expect(exit.mock.calls).toEqual([[128 + 12]]);
      expect(stderr.mock.calls.some((c) => String(c[0]).includes('report failed'))).toBe(true);
    } finally {
      off();
      exit.mockRestore();
      stderr.mockRestore();
    }
  });
});
