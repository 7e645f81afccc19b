/**
 * `connectFailure: 'all'` (the default): how soon a database that comes back is used again.
 * `connectFailure: 'one'` (pg-pool's semantics, used by the pg drop-in): a failed connect fails
 * only the caller it was made for, and the callers still waiting get a new attempt at once; and
 * `retireIdle`, which closes one idle connection with the reason given.
 */
import { ConfigError, ConnectError } from '../../src';
import { closeAll, metric, rejection, setup, waitFor } from '../helpers/unit';

afterEach(closeAll);

const refused = (): Error => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

test("'all' (the default): every caller waiting when a connect fails gets its error", async () => {
  const { pool, db } = setup({ name: 'cf_all', max: 1 }, { connectDelayMs: 20 });
  db.connectFailures.push(refused());
  const [a, b] = [rejection(pool.acquire()), rejection(pool.acquire())];
  expect(await a).toBeInstanceOf(ConnectError);
  expect(await b).toBeInstanceOf(ConnectError);
});

test("'all': a database that comes back after many failures is used within the backoff cap, and every slot reconnects", async () => {
  const { pool, db } = setup({ name: 'cf_back', max: 4, acquireTimeoutMs: 5_000 });
  // Many failures in a row: without a cap the backoffs would have grown past a second.
  for (let i = 0; i < 200; i++) db.connectFailures.push(refused());
  const t0 = performance.now();
  while (performance.now() - t0 < 1_500) expect(await rejection(pool.acquire())).toBeInstanceOf(ConnectError);
  db.connectFailures.length = 0; // the database is back
  const back = performance.now();
  const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()]);
  // All four slots reconnect: the one that succeeds first ends the other slots' backoffs.
  expect(performance.now() - back).toBeLessThan(600);
  expect(pool.stats()).toMatchObject({ size: 4, active: 4 });
  await Promise.all(leases.map((l) => l.release()));
});

test("'one': only the longest-waiting caller gets the error; the next caller is served by a new attempt, without backoff", async () => {
  const { pool, db } = setup({ name: 'cf_one', max: 1, connectFailure: 'one' }, { connectDelayMs: 20 });
  db.connectFailures.push(refused(), refused());
  const first = rejection(pool.acquire());
  const second = rejection(pool.acquire());
  const third = pool.acquire();
  const t0 = performance.now();
  expect(await first).toBeInstanceOf(ConnectError);
  expect(await second).toBeInstanceOf(ConnectError);
  const lease = await third;
  // Two failures and a success in a row: no 50 + 100 ms backoff between the attempts.
  expect(performance.now() - t0).toBeLessThan(150);
  expect(db.connectAttempts).toBe(3);
  await lease.release();
});

test("'one': a caller that began waiting after the failed attempt began keeps waiting for the next one", async () => {
  const { pool, db } = setup({ name: 'cf_late', max: 1, connectFailure: 'one', acquireTimeoutMs: 1_000 }, { connectDelayMs: 30 });
  db.connectFailures.push(refused());
  const early = pool.acquire({ timeoutMs: 10 }); // gives up while the first attempt is under way
  await expect(early).rejects.toThrow();
  const late = pool.acquire(); // began after the failing attempt: not its caller
  const lease = await late;
  expect(db.connectAttempts).toBe(2);
  await lease.release();
});

test('connectFailure is validated', () => {
  expect(() => setup({ connectFailure: 'some' as 'one' })).toThrow(ConfigError);
});

test('retireIdle closes that idle connection now, counted with the reason given; a leased one is left alone', async () => {
  const { pool, db, registry } = setup({ name: 'cf_retire', max: 2 });
  const [a, b] = [await pool.acquire(), await pool.acquire()];
  const held = b.record.connection;
  const idle = a.record.connection;
  await a.release();
  expect(pool.stats()).toMatchObject({ size: 2, idle: 1 });
  pool.retireIdle(held, 'idle');
  expect(pool.stats()).toMatchObject({ size: 2, idle: 1 });
  pool.retireIdle(idle, 'lifetime');
  expect(pool.stats()).toMatchObject({ size: 1, idle: 0 });
  await waitFor('closed', () => db.open.length === 1);
  expect(await metric(registry, 'leasepool_connections_closed_total', { pool: 'cf_retire', reason: 'lifetime' })).toBe(1);
  await b.release();
  expect(pool.stats()).toMatchObject({ size: 1, idle: 1 });
});
