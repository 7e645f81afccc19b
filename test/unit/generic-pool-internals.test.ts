/**
 * The hot path's reach into generic-pool 3.9.0: an idle connection taken without a request and
 * given back without a promise must leave generic-pool exactly as its own acquire/release would
 * (counts, order of the idle list, drain() waiting for what is on loan).
 */
import * as genericPool from 'generic-pool';
import { createGenericPool, returnIdle, takeIdle } from '../../src/generic-pool-internals';
import type { PooledConnection } from '../../src/connections';

type Conn = PooledConnection<{ id: number }>;

function pool(max: number): genericPool.Pool<Conn> {
  let next = 0;
  const factory = { create: async () => ({ raw: { id: ++next } }) as unknown as Conn, destroy: async () => undefined };
  return createGenericPool(factory as unknown as genericPool.Factory<Conn>, { max, min: 0, autostart: false });
}

async function warm(gp: genericPool.Pool<Conn>, n: number): Promise<[Conn, ...Conn[]]> {
  const conns = await Promise.all(Array.from({ length: n }, () => gp.acquire()));
  for (const c of conns) await gp.release(c);
  return conns as [Conn, ...Conn[]];
}

test('takeIdle / returnIdle keep the counts and the FIFO order generic-pool keeps', async () => {
  const gp = pool(3);
  const [a, b, c] = (await warm(gp, 3)) as [Conn, Conn, Conn];
  expect([gp.size, gp.available, gp.borrowed]).toEqual([3, 3, 0]);
  const first = takeIdle(gp);
  expect(first).toBe(a); // the oldest idle one, as generic-pool's own dispatch (fifo) gives
  expect([gp.available, gp.borrowed, gp.isBorrowedResource(a)]).toEqual([2, 1, true]);
  expect(returnIdle(gp, a)).toBe(true);
  expect([gp.available, gp.borrowed, gp.isBorrowedResource(a)]).toEqual([3, 0, false]);
  expect(returnIdle(gp, a)).toBe(false); // not on loan any more: the caller falls back to gp.release
  // Back at the end of the idle list: b, c, then a.
  expect([takeIdle(gp), takeIdle(gp), takeIdle(gp)]).toEqual([b, c, a]);
  expect(takeIdle(gp)).toBeUndefined();
  for (const conn of [a, b, c]) returnIdle(gp, conn);
  await gp.drain();
  await gp.clear();
});

test('a loan taken by takeIdle and given back by gp.release (the fallback) works too', async () => {
  const gp = pool(1);
  const [a] = await warm(gp, 1);
  expect(takeIdle(gp)).toBe(a);
  await gp.release(a);
  expect([gp.available, gp.borrowed]).toEqual([1, 0]);
  await gp.drain();
  await gp.clear();
});

test('drain() waits for a connection taken by takeIdle until it is given back', async () => {
  const gp = pool(2);
  const [a] = await warm(gp, 1);
  expect(takeIdle(gp)).toBe(a);
  let drained = false;
  const draining = gp.drain().then(() => (drained = true));
  await new Promise((resolve) => setImmediate(resolve));
  expect(drained).toBe(false);
  returnIdle(gp, a);
  await draining;
  expect(drained).toBe(true);
  await gp.clear();
});

test('a queued generic-pool request is served by a connection given back with returnIdle', async () => {
  const gp = pool(1);
  const [a] = await warm(gp, 1);
  expect(takeIdle(gp)).toBe(a);
  const waiting = gp.acquire();
  expect(takeIdle(gp)).toBeUndefined(); // requests queued: they come first
  returnIdle(gp, a);
  expect(await waiting).toBe(a);
  await gp.release(a);
  await gp.drain();
  await gp.clear();
});
