/**
 * `Pool.scopedCallback`: the scope the drop-ins' `pool.query()` run in. The body sends one
 * statement on the raw connection and reports through `done`; the scope protocol (release however
 * it ends, revoke wins at once, statements in flight never pooled) must hold as for withLease.
 */
import { LeaseTimeoutError, PoolClosedError } from '../../src';
import { statementEnded } from '../../src/guard';
import type { Lease } from '../../src/lease';
import type { FakeConnection } from '../helpers/fake-adapter';
import { closeAll, deferred, rejection, setup } from '../helpers/unit';

afterEach(closeAll);

/** A body that runs `sql` on the raw connection, counted in flight as the drop-ins count it. */
function statement(sql: string, onSent?: (lease: Lease<FakeConnection>) => void) {
  return (lease: Lease<FakeConnection>, done: (error: unknown, value?: unknown) => void): void => {
    const record = lease.record;
    const raw = record.connection.raw;
    record.inflight++;
    raw.query(sql).then(
      (result) => {
        statementEnded(record, raw, 'query', undefined, result);
        done(undefined, result);
      },
      (err: unknown) => {
        statementEnded(record, raw, 'query', err, undefined);
        done(err);
      },
    );
    onSent?.(lease);
  };
}

test('done(undefined, value) resolves with the value and gives the connection back', async () => {
  const { pool, db } = setup({ max: 1 });
  await expect(pool.scopedCallback(statement('SELECT 1'), undefined, undefined)).resolves.toEqual({ rows: [] });
  expect(pool.stats()).toMatchObject({ size: 1, idle: 1, active: 0 });
  expect(db.connections[0]!.log).toEqual(['SELECT 1']);
  expect(db.connections[0]!.closed).toBe(false);
});

test("done(err) rejects with the statement's error (mapError told it started); a non-fatal error keeps the connection", async () => {
  const { pool } = setup({ max: 1 });
  const mapped: Array<[unknown, boolean]> = [];
  const err = await rejection(
    pool.scopedCallback(statement('FAIL'), undefined, undefined, (error, started) => {
      mapped.push([error, started]);
      return error;
    }),
  );
  expect((err as Error).message).toBe('statement failed');
  expect(mapped).toEqual([[err, true]]);
  expect(pool.stats()).toMatchObject({ size: 1, idle: 1 });
});

test('a fatal error through done destroys the connection', async () => {
  const { pool, db } = setup({ max: 1 });
  await expect(pool.scopedCallback(statement('FATAL'), undefined, undefined)).rejects.toThrow('connection lost');
  expect(pool.stats()).toMatchObject({ size: 0, active: 0 });
  expect(db.connections[0]!.closed || db.connections[0]!.dead).toBe(true);
});

test('a failed acquire goes through mapError with started = false', async () => {
  const { pool } = setup({ max: 1 });
  await pool.close();
  const mapped: boolean[] = [];
  const err = await rejection(
    pool.scopedCallback(statement('SELECT 1'), undefined, undefined, (error, started) => {
      mapped.push(started);
      return new Error('mapped', { cause: error });
    }),
  );
  expect((err as Error).message).toBe('mapped');
  expect((err as Error).cause).toBeInstanceOf(PoolClosedError);
  expect(mapped).toEqual([false]);
});

test('a body that throws rejects with its error and releases the lease', async () => {
  const { pool } = setup({ max: 1 });
  const boom = new Error('boom');
  await expect(
    pool.scopedCallback(
      () => {
        throw boom;
      },
      undefined,
      undefined,
    ),
  ).rejects.toBe(boom);
  expect(pool.stats()).toMatchObject({ size: 1, idle: 1, active: 0 });
});

test('a second done is ignored', async () => {
  const { pool } = setup({ max: 1 });
  const value = await pool.scopedCallback<string>(
    (_lease, done) => {
      done(undefined, 'first');
      done(new Error('second'));
      done(undefined, 'third');
    },
    undefined,
    undefined,
  );
  expect(value).toBe('first');
  expect(pool.stats()).toMatchObject({ size: 1, idle: 1, active: 0 });
});

test('a lease deadline ends the scope at once; the statement in flight is cancelled and its connection never pooled', async () => {
  const { pool, db } = setup({ max: 1 });
  const sent = deferred<Lease<FakeConnection>>();
  const scope = pool.scopedCallback(statement('SLEEP 5000', sent.resolve), { timeoutMs: 30 }, undefined);
  const lease = await sent.promise;
  const raw = lease.record.connection.raw;
  await expect(scope).rejects.toBeInstanceOf(LeaseTimeoutError);
  // The fake adapter's cancel rejects the sleep: its done() comes after the revoke and is ignored.
  expect(raw.closed).toBe(true);
  expect(db.cancelled).toEqual([raw.id]);
  expect(pool.stats()).toMatchObject({ active: 0 });
  await expect(pool.scopedCallback(statement('SELECT 1'), undefined, undefined)).resolves.toEqual({ rows: [] });
  expect(db.connections).toHaveLength(2);
});

test('the revoke reason goes through mapError as a started scope, once', async () => {
  const { pool } = setup({ max: 1 });
  const mapped: Array<[unknown, boolean]> = [];
  const err = await rejection(
    pool.scopedCallback(statement('SLEEP 5000'), { timeoutMs: 30 }, undefined, (error, started) => {
      mapped.push([error, started]);
      return new Error('mapped', { cause: error });
    }),
  );
  expect((err as Error).message).toBe('mapped');
  expect((err as Error).cause).toBeInstanceOf(LeaseTimeoutError);
  // The cancelled statement's own error comes after the revoke: ignored, not mapped.
  expect(mapped).toHaveLength(1);
  expect(mapped[0]?.[1]).toBe(true);
});
