/**
 * withTx on the fake adapter: statement sequences, rollback with the original error, savepoints
 * (nested, three levels, concurrent siblings never interleaved), retries, unknown commit
 * outcome, and option validation before anything is sent.
 */
import { ConfigError, suppressedErrors, TxOutcomeUnknownError, withTx, type Transaction, type TxOptions } from '../../src';
import { FakeError, type FakeConnection } from '../helpers/fake-adapter';
import { closeAll, delay, metric, rejection, setup } from '../helpers/unit';

afterEach(closeAll);

const retryable = (): FakeError => new FakeError('could not serialize access', false, true);

test('commit: BEGIN, the work, COMMIT; the result is returned; the tx handle describes the frame', async () => {
  const { pool, db, registry } = setup({ name: 'tx_commit' });
  let seen: Transaction<FakeConnection> | undefined;
  const result = await pool.withTx(async (conn, tx) => {
    seen = tx;
    expect(tx.lease.inTransaction).toBe(true);
    expect(conn.status).toBe('in_tx');
    await conn.query('INSERT 1');
    await conn.query('INSERT 2');
    return 'done';
  });
  expect(result).toBe('done');
  expect(seen).toMatchObject({ depth: 1, attempt: 1, savepoint: undefined });
  expect(seen!.signal).toBeInstanceOf(AbortSignal);
  expect(db.connections[0]!.log).toEqual(['BEGIN', 'INSERT 1', 'INSERT 2', 'COMMIT']);
  expect(pool.stats()).toMatchObject({ active: 0, idle: 1 });
  expect(await metric(registry, 'leasepool_transactions_total', { pool: 'tx_commit', outcome: 'commit' })).toBe(1);
  expect(await metric(registry, 'leasepool_transaction_duration_seconds', { pool: 'tx_commit', outcome: 'commit' }, '_count')).toBe(1);
});

test('withTx(pool, fn, opts) is the same as pool.withTx', async () => {
  const { pool, db } = setup();
  await withTx(pool, async (conn) => conn.query('X'), { isolation: 'serializable' });
  expect(db.connections[0]!.log).toEqual(['BEGIN ISOLATION LEVEL SERIALIZABLE', 'X', 'COMMIT']);
});

test('BEGIN options reach the dialect', async () => {
  const { pool, db } = setup();
  await pool.withTx(async () => undefined, { isolation: 'serializable', readOnly: true, deferrable: true });
  await pool.withTx(async () => undefined, { isolation: 'read committed', readOnly: false });
  expect(db.connections[0]!.log).toEqual([
    'BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE',
    'COMMIT',
    'BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE',
    'COMMIT',
  ]);
});

test('rollback on throw: the original error (identity), ROLLBACK sent, connection reused', async () => {
  const { pool, db, registry } = setup({ name: 'tx_rollback', max: 1 });
  const boom = new Error('boom');
  const err = await rejection(
    pool.withTx(async (conn) => {
      await conn.query('INSERT');
      throw boom;
    }),
  );
  expect(err).toBe(boom);
  expect(suppressedErrors(err)).toEqual([]);
  expect(db.connections[0]!.log).toEqual(['BEGIN', 'INSERT', 'ROLLBACK']);
  expect(await metric(registry, 'leasepool_transactions_total', { pool: 'tx_rollback', outcome: 'rollback' })).toBe(1);
  // Not an extra rollback at release: the transaction was closed by withTx.
  expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'tx_rollback', kind: 'rollback_on_release' })).toBe(0);
  await pool.withTx(async (conn) => expect(conn.id).toBe(db.connections[0]!.id));
});

test('a failing ROLLBACK is attached to the body error and the connection destroyed', async () => {
  const { pool, db, registry } = setup({ name: 'tx_failed_rollback', max: 1 });
  const boom = new Error('boom');
  db.failRollback = true;
  const err = await rejection(pool.withTx(async () => Promise.reject(boom)));
  expect(err).toBe(boom);
  expect(suppressedErrors(err)).toEqual([expect.objectContaining({ message: 'rollback failed' })]);
  expect(db.connections[0]!.closed).toBe(true);
  // Counted: the transaction as a rollback, the connection as closed broken; the next caller gets a new one.
  const m = (name: string, labels: Record<string, string>): Promise<number> => metric(registry, name, { pool: 'tx_failed_rollback', ...labels });
  expect(await m('leasepool_transactions_total', { outcome: 'rollback' })).toBe(1);
  expect(await m('leasepool_connections_closed_total', { reason: 'broken' })).toBe(1);
  db.failRollback = false;
  await pool.withTx((conn) => conn.query('NEXT'));
  expect(db.connections).toHaveLength(2);
  expect(db.connections[1]!.log).toEqual(['BEGIN', 'NEXT', 'COMMIT']);
});

test('a body that throws synchronously is rolled back too', async () => {
  const { pool, db } = setup();
  const boom = new Error('sync');
  expect(
    await rejection(
      pool.withTx(() => {
        throw boom;
      }),
    ),
  ).toBe(boom);
  expect(db.connections[0]!.log).toEqual(['BEGIN', 'ROLLBACK']);
});

describe('savepoints', () => {
  test('a nested failure rolls back to its savepoint only; the outer transaction commits', async () => {
    const { pool, db } = setup({ max: 1 });
    const inner = new Error('inner');
    await pool.withTx(async (conn, tx) => {
      await conn.query('A');
      const err = await rejection(
        pool.withTx(async (c, nested) => {
          expect(c).toBe(conn);
          expect(nested).toMatchObject({ depth: 2, savepoint: 'lp_sp_1' });
          expect(nested.lease).toBe(tx.lease);
          await c.query('B');
          throw inner;
        }),
      );
      expect(err).toBe(inner);
      await conn.query('C');
    });
    expect(db.connections).toHaveLength(1);
    expect(db.connections[0]!.log).toEqual([
      'BEGIN',
      'A',
      'SAVEPOINT lp_sp_1',
      'B',
      'ROLLBACK TO SAVEPOINT lp_sp_1',
      'RELEASE SAVEPOINT lp_sp_1',
      'C',
      'COMMIT',
    ]);
  });

  test('a nested failure that the outer lets through rolls back everything, with the inner error', async () => {
    const { pool, db } = setup({ max: 1 });
    const inner = new Error('inner');
    const err = await rejection(
      pool.withTx(async (conn) => {
        await conn.query('A');
        await pool.withTx(async () => Promise.reject(inner));
      }),
    );
    expect(err).toBe(inner);
    expect(db.connections[0]!.log).toEqual([
      'BEGIN',
      'A',
      'SAVEPOINT lp_sp_1',
      'ROLLBACK TO SAVEPOINT lp_sp_1',
      'RELEASE SAVEPOINT lp_sp_1',
      'ROLLBACK',
    ]);
  });

  test('an aborted statement inside a savepoint is recovered by ROLLBACK TO', async () => {
    const { pool, db } = setup({ max: 1 });
    await pool.withTx(async (conn) => {
      await expect(pool.withTx(async (c) => c.query('FAIL'))).rejects.toThrow('statement failed');
      expect(conn.status).toBe('in_tx');
      await conn.query('AFTER');
    });
    expect(db.connections[0]!.log.at(-2)).toBe('AFTER');
    expect(db.connections[0]!.log.at(-1)).toBe('COMMIT');
  });

  test('three levels', async () => {
    const { pool, db } = setup({ max: 1 });
    const depths: number[] = [];
    await pool.withTx(async (c1, t1) => {
      depths.push(t1.depth);
      await c1.query('L1');
      await pool.withTx(async (c2, t2) => {
        depths.push(t2.depth);
        await c2.query('L2');
        await pool.withTx(async (c3, t3) => {
          depths.push(t3.depth);
          expect(t3.savepoint).toBe('lp_sp_2');
          await c3.query('L3');
        });
      });
    });
    expect(depths).toEqual([1, 2, 3]);
    expect(db.connections[0]!.log).toEqual([
      'BEGIN',
      'L1',
      'SAVEPOINT lp_sp_1',
      'L2',
      'SAVEPOINT lp_sp_2',
      'L3',
      'RELEASE SAVEPOINT lp_sp_2',
      'RELEASE SAVEPOINT lp_sp_1',
      'COMMIT',
    ]);
  });

  test('concurrent nested withTx (Promise.all) never interleave', async () => {
    const { pool, db } = setup({ max: 1 });
    await pool.withTx(async () => {
      await Promise.all([
        pool.withTx(async (c) => {
          await c.query('A1');
          await delay(10);
          await c.query('A2');
        }),
        pool.withTx(async (c) => {
          await c.query('B1');
          await c.query('B2');
        }),
      ]);
    });
    expect(db.connections[0]!.log).toEqual([
      'BEGIN',
      'SAVEPOINT lp_sp_1',
      'A1',
      'A2',
      'RELEASE SAVEPOINT lp_sp_1',
      'SAVEPOINT lp_sp_2',
      'B1',
      'B2',
      'RELEASE SAVEPOINT lp_sp_2',
      'COMMIT',
    ]);
  });

  test('a nested withTx the body forgot to await finishes before COMMIT, never after it', async () => {
    const { pool, db } = setup({ max: 1 });
    let inner: Promise<void> | undefined;
    await pool.withTx(async (c) => {
      await c.query('OUTER');
      inner = pool.withTx(async (c2) => {
        await delay(20);
        await c2.query('INNER');
      });
    });
    await inner;
    expect(db.connections[0]!.log).toEqual(['BEGIN', 'OUTER', 'SAVEPOINT lp_sp_1', 'INNER', 'RELEASE SAVEPOINT lp_sp_1', 'COMMIT']);
  });

  test('a nested withTx asking for another isolation or access mode is a ConfigError, nothing sent; the same values are fine', async () => {
    const { pool, db } = setup();
    await pool.withTx(
      async () => {
        const before = db.statements;
        const err = await rejection(pool.withTx(async () => undefined, { isolation: 'read committed', readOnly: false }));
        expect(err).toBeInstanceOf(ConfigError);
        expect((err as ConfigError).fields).toEqual(['isolation', 'readOnly']);
        expect(db.statements).toBe(before);
        await pool.withTx(async (c) => c.query('SAME'), { isolation: 'serializable', readOnly: true });
      },
      { isolation: 'serializable', readOnly: true },
    );
    expect(db.connections[0]!.log).toContain('SAME');
  });

  test('a failing sibling does not disturb the other: one rolled back, one released', async () => {
    const { pool, db } = setup({ max: 1 });
    const results = await pool.withTx(async () =>
      Promise.allSettled([
        pool.withTx(async (c) => {
          await c.query('A');
          throw new Error('a failed');
        }),
        pool.withTx(async (c) => c.query('B')),
      ]),
    );
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled']);
    expect(db.connections[0]!.log).toEqual([
      'BEGIN',
      'SAVEPOINT lp_sp_1',
      'A',
      'ROLLBACK TO SAVEPOINT lp_sp_1',
      'RELEASE SAVEPOINT lp_sp_1',
      'SAVEPOINT lp_sp_2',
      'B',
      'RELEASE SAVEPOINT lp_sp_2',
      'COMMIT',
    ]);
  });

  test('withTx inside withLease opens a transaction on the same connection', async () => {
    const { pool, db } = setup({ max: 1 });
    await pool.withLease(async (conn) => {
      await conn.query('BEFORE');
      await pool.withTx(async (c) => {
        expect(c).toBe(conn);
        await c.query('IN');
      });
      await conn.query('AFTER');
    });
    expect(db.connections[0]!.log).toEqual(['BEFORE', 'BEGIN', 'IN', 'COMMIT', 'AFTER']);
  });

  test('withLease inside withTx joins the transaction', async () => {
    const { pool, db } = setup({ max: 1 });
    await pool.withTx(async (conn) => {
      await pool.withLease(async (c) => {
        expect(c).toBe(conn);
        await c.query('HELPER');
      });
    });
    expect(db.connections[0]!.log).toEqual(['BEGIN', 'HELPER', 'COMMIT']);
  });

  test("propagation 'requiresNew' uses its own connection and commits independently", async () => {
    const { pool, db } = setup({ max: 2 });
    await expect(
      pool.withTx(async (conn) => {
        await conn.query('OUTER');
        await pool.withTx(async (c) => c.query('AUDIT'), { propagation: 'requiresNew' });
        throw new Error('outer fails');
      }),
    ).rejects.toThrow('outer fails');
    expect(db.connections[0]!.log).toEqual(['BEGIN', 'OUTER', 'ROLLBACK']);
    expect(db.connections[1]!.log).toEqual(['BEGIN', 'AUDIT', 'COMMIT']);
  });
});

describe('retries', () => {
  test('a retryable failure reruns the transaction; attempts and metrics count it', async () => {
    const { pool, db, registry } = setup({ name: 'tx_retry', max: 1 });
    const attempts: number[] = [];
    const result = await pool.withTx(
      async (conn, tx) => {
        attempts.push(tx.attempt);
        await conn.query(`WORK ${tx.attempt}`);
        if (tx.attempt < 3) await conn.query('RETRYABLE');
        return tx.attempt;
      },
      { retries: 3, retryBaseDelayMs: 1 },
    );
    expect(result).toBe(3);
    expect(attempts).toEqual([1, 2, 3]);
    expect(db.connections[0]!.log).toEqual([
      'BEGIN',
      'WORK 1',
      'RETRYABLE',
      'ROLLBACK',
      'BEGIN',
      'WORK 2',
      'RETRYABLE',
      'ROLLBACK',
      'BEGIN',
      'WORK 3',
      'COMMIT',
    ]);
    expect(await metric(registry, 'leasepool_transactions_total', { pool: 'tx_retry', outcome: 'retry' })).toBe(2);
    expect(await metric(registry, 'leasepool_transactions_total', { pool: 'tx_retry', outcome: 'rollback' })).toBe(2);
    expect(await metric(registry, 'leasepool_transactions_total', { pool: 'tx_retry', outcome: 'commit' })).toBe(1);
  });

  test('backoff: exponential, capped at retryMaxDelayMs, full jitter (uniform from 0)', async () => {
    const { pool } = setup({ max: 1 });
    const timeline: string[] = [];
    const realSetTimeout = global.setTimeout;
    // Backoff sleeps are recorded and cut short; the pool's own deadlines (seconds long) run as usual.
    const timers = jest.spyOn(global, 'setTimeout').mockImplementation(((fn: () => void, ms = 0) => {
      if (ms >= 1_000) return realSetTimeout(fn, ms);
      timeline.push(`wait ${ms}`);
      return realSetTimeout(fn, 0);
    }) as typeof setTimeout);
    const random = jest.spyOn(Math, 'random');
    try {
      for (const r of [0.5, 0, 0.999]) {
        random.mockReturnValue(r);
        timeline.push(`random ${r}`);
        await pool.withTx(
          async (conn, tx) => {
            timeline.push(`attempt ${tx.attempt}`);
            if (tx.attempt < 5) await conn.query('RETRYABLE');
          },
          { retries: 4, retryBaseDelayMs: 8, retryMaxDelayMs: 20 },
        );
      }
    } finally {
      timers.mockRestore();
      random.mockRestore();
    }
    // Ceilings 8, 16, 20 (capped), 20; each wait is random() times its ceiling.
    const waits = (r: number): string[] => [8, 16, 20, 20].flatMap((ceiling, i) => [`attempt ${i + 1}`, `wait ${r * ceiling}`]).concat('attempt 5');
    expect(timeline).toEqual([`random 0.5`, ...waits(0.5), `random 0`, ...waits(0), `random 0.999`, ...waits(0.999)]);
  });

  test('when retries run out the last error is thrown with error.attempts', async () => {
    const { pool, db } = setup();
    const errors: unknown[] = [];
    const err = await rejection(
      pool.withTx(
        async () => {
          const e = retryable();
          errors.push(e);
          throw e;
        },
        { retries: 2, retryBaseDelayMs: 1 },
      ),
    );
    expect(errors).toHaveLength(3);
    expect(err).toBe(errors[2]);
    expect((err as { attempts?: number }).attempts).toBe(3);
    expect(db.connections[0]!.log.filter((s) => s === 'BEGIN')).toHaveLength(3);
  });

  test('no retries by default, and a non-retryable error is never retried', async () => {
    const { pool } = setup();
    let runs = 0;
    await expect(
      pool.withTx(async () => {
        runs++;
        throw retryable();
      }),
    ).rejects.toMatchObject({ retryable: true });
    expect(runs).toBe(1);
    runs = 0;
    const plain = new Error('plain');
    const err = await rejection(
      pool.withTx(
        async () => {
          runs++;
          throw plain;
        },
        { retries: 5, retryBaseDelayMs: 1 },
      ),
    );
    expect(runs).toBe(1);
    expect(err).toBe(plain);
    expect((err as { attempts?: number }).attempts).toBeUndefined();
  });

  test('a retryable COMMIT failure is retried', async () => {
    const { pool, db } = setup();
    db.failCommit = retryable();
    let runs = 0;
    await pool.withTx(
      async (conn) => {
        runs++;
        await conn.query('W');
      },
      { retries: 1, retryBaseDelayMs: 1 },
    );
    expect(runs).toBe(2);
    expect(db.connections[0]!.log).toEqual(['BEGIN', 'W', 'COMMIT', 'ROLLBACK', 'BEGIN', 'W', 'COMMIT']);
  });

  test('a nested savepoint is not retried on its own (only the top level reruns)', async () => {
    const { pool, db } = setup({ max: 1 });
    let outerRuns = 0;
    let innerRuns = 0;
    await pool.withTx(
      async () => {
        outerRuns++;
        await pool.withTx(async (c) => {
          innerRuns++;
          if (outerRuns === 1) await c.query('RETRYABLE');
        });
      },
      { retries: 2, retryBaseDelayMs: 1 },
    );
    expect([outerRuns, innerRuns]).toEqual([2, 2]);
    expect(db.connections[0]!.log.filter((s) => s === 'BEGIN')).toHaveLength(2);
  });
});

test('a fatal COMMIT failure → TxOutcomeUnknownError, never retried, connection destroyed', async () => {
  const { pool, db, registry } = setup({ name: 'tx_unknown', max: 1 });
  pool.on('error', () => undefined);
  const lost = new FakeError('connection lost during commit', true, false);
  db.failCommit = lost;
  let runs = 0;
  const err = await rejection(
    pool.withTx(
      async (conn) => {
        runs++;
        await conn.query('W');
      },
      { retries: 3, retryBaseDelayMs: 1 },
    ),
  );
  expect(err).toBeInstanceOf(TxOutcomeUnknownError);
  expect(err).toMatchObject({ code: 'TX_OUTCOME_UNKNOWN', cause: lost });
  expect(runs).toBe(1);
  expect(db.connections[0]!.log).toEqual(['BEGIN', 'W', 'COMMIT']);
  expect(db.connections[0]!.closed).toBe(true);
  expect(await metric(registry, 'leasepool_transactions_total', { pool: 'tx_unknown', outcome: 'unknown' })).toBe(1);
  expect(await metric(registry, 'leasepool_transactions_total', { pool: 'tx_unknown', outcome: 'retry' })).toBe(0);
  // The pool carries on with a new connection.
  await pool.withTx(async (conn) => conn.query('NEXT'));
  expect(db.connections[1]!.log).toEqual(['BEGIN', 'NEXT', 'COMMIT']);
});

describe('invalid TxOptions → ConfigError and nothing sent', () => {
  test.each<[string, TxOptions, string[]]>([
    ['SQL in isolation', { isolation: "serializable; DROP TABLE users; --" as TxOptions['isolation'] }, ['isolation']],
    ['uppercase / unknown isolation', { isolation: 'SNAPSHOT' as TxOptions['isolation'] }, ['isolation']],
    ['isolation with a comment', { isolation: 'read committed/**/' as TxOptions['isolation'] }, ['isolation']],
    ['readOnly as a string', { readOnly: 'true' as unknown as boolean }, ['readOnly']],
    ['deferrable without serializable read only', { deferrable: true }, ['deferrable']],
    ['negative retries', { retries: -1 }, ['retries']],
    ['too many retries', { retries: 1_000 }, ['retries']],
    ['bad propagation', { propagation: 'mandatory' as TxOptions['propagation'] }, ['propagation']],
    ['unknown key', { isolationLevel: 'serializable' } as unknown as TxOptions, ['isolationLevel']],
    ['signal not a signal', { signal: {} as AbortSignal }, ['signal']],
    ['NaN timeout', { timeoutMs: NaN }, ['timeoutMs']],
    [
      'several at once',
      { isolation: "'; COMMIT; --" as TxOptions['isolation'], readOnly: 1 as unknown as boolean, retryBaseDelayMs: -5 },
      ['isolation', 'readOnly', 'retryBaseDelayMs'],
    ],
  ])('%s', async (_label, options, fields) => {
    const { pool, db } = setup();
    let ran = false;
    const err = await rejection(
      pool.withTx(async () => {
        ran = true;
      }, options),
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toMatchObject({ code: 'INVALID_CONFIG' });
    expect([...(err as ConfigError).fields].sort()).toEqual([...fields].sort());
    expect(ran).toBe(false);
    expect(db.connectAttempts).toBe(0);
    expect(db.statements).toBe(0);
  });

  test('inside an open transaction, invalid options send nothing either', async () => {
    const { pool, db } = setup();
    await pool.withTx(async () => {
      const before = db.statements;
      await expect(pool.withTx(async () => undefined, { isolation: 'x' as TxOptions['isolation'] })).rejects.toBeInstanceOf(ConfigError);
      expect(db.statements).toBe(before);
    });
  });
});

test('two withTx in Promise.all inside one withLease run one after the other on its connection', async () => {
  const { pool, db } = setup({ max: 1 });
  await pool.withLease(async () => {
    await Promise.all([
      pool.withTx(async (c) => {
        await c.query('A1');
        await delay(5);
        await c.query('A2');
      }),
      pool.withTx(async (c) => c.query('B1')),
    ]);
  });
  expect(db.connections[0]!.log).toEqual(['BEGIN', 'A1', 'A2', 'COMMIT', 'BEGIN', 'B1', 'COMMIT']);
});

test('withTx acquire options: an aborted signal or an acquire timeout, nothing sent', async () => {
  const { pool, db } = setup({ max: 1 });
  const reason = new Error('stop');
  await expect(pool.withTx(async () => undefined, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
  expect(db.statements).toBe(0);
  const held = await pool.acquire();
  await expect(pool.withTx(async () => undefined, { acquireTimeoutMs: 20 })).rejects.toMatchObject({ code: 'ACQUIRE_TIMEOUT' });
  expect(db.statements).toBe(0);
  await held.release();
});
