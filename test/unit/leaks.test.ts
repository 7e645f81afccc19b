/**
 * Leak detection (one report per lease, with the acquire stack; the return reported too),
 * activeLeases(), and lease deadlines (leaseTimeoutMs, withLease/withTx timeoutMs) that revoke
 * the lease even when the callback ignores its signal.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import { LeaseRevokedError, LeaseTimeoutError, withTx, type DeadlineEvent, type LeakEvent, type LeakReturnedEvent, type ReclaimEvent } from '../../src';
import type { ActiveLeases } from '../../src/lease';
import { LeakDetector } from '../../src/leaks';
import { FakeError } from '../helpers/fake-adapter';
import { closeAll, metric, rejection, setup, waitFor } from '../helpers/unit';

afterEach(closeAll);

const THIS_FILE = 'leaks.test.ts';

describe('leak detection', () => {
  test("exactly one 'leak' event per lease, with a stack naming the caller; 'leakReturned' after release", async () => {
    const { pool, logs, registry } = setup({ name: 'leak_once', leakDetectionMs: 30 });
    const leaks: LeakEvent[] = [];
    const returned: LeakReturnedEvent[] = [];
    pool.on('leak', (e) => leaks.push(e));
    pool.on('leakReturned', (e) => returned.push(e));

    const a = await pool.acquire();
    await waitFor('lease a is reported', () => leaks.length === 1);
    expect(leaks[0]).toMatchObject({ id: a.id, inTransaction: false });
    expect(leaks[0]!.ageMs).toBeGreaterThanOrEqual(30);
    expect(leaks[0]!.stack).toContain(THIS_FILE);
    expect(leaks[0]!.stack).not.toMatch(/^Error/); // frames only, no header line

    // A second lease reported later proves the detector kept scanning past `a` without repeating it.
    const b = await pool.acquire();
    await waitFor('lease b is reported', () => leaks.length === 2);
    expect(leaks.map((l) => l.id)).toEqual([a.id, b.id]);

    const warnings = logs.filter((l) => l.level === 'warn' && l.msg?.includes('possible leak'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]!.msg).toContain(THIS_FILE);
    expect(await metric(registry, 'leasepool_leaks_detected_total', { pool: 'leak_once' })).toBe(2);

    await a.release();
    expect(returned).toEqual([{ id: a.id, heldMs: expect.any(Number) }]);
    expect(returned[0]!.heldMs).toBeGreaterThanOrEqual(30);
    expect(logs.some((l) => l.level === 'warn' && l.msg?.includes(`previously reported leaked lease #${a.id}`))).toBe(true);
    await b.release();
    expect(returned.map((r) => r.id)).toEqual([a.id, b.id]);
  });

  test('leakStacksPerSecond bounds the stacks recorded: past the budget a lease has none, and the report says why', async () => {
    const { pool, logs } = setup({ name: 'leak_budget', max: 4, leakDetectionMs: 30, leakStacksPerSecond: 2 });
    const leaks: LeakEvent[] = [];
    pool.on('leak', (e) => leaks.push(e));
    const held = [await pool.acquire(), await pool.acquire(), await pool.acquire()];
    expect(pool.activeLeases().map((l) => l.stack !== undefined)).toEqual([true, true, false]);
    await waitFor('all three are reported', () => leaks.length === 3);
    expect(leaks[2]!.stack).toBeUndefined();
    const report = logs.find((l) => l.level === 'warn' && l.msg?.includes(`lease #${held[2]!.id} held`));
    expect(report?.msg).toContain('acquire stack not recorded: at most leakStacksPerSecond=2');
    // The bucket refills at 2 per second: after half a second one more acquire records its stack.
    await new Promise((resolve) => setTimeout(resolve, 550));
    held.push(await pool.acquire());
    expect(pool.activeLeases()[3]!.stack).toContain(THIS_FILE);
    for (const lease of held) await lease.release();
  });

  test('leakStacksPerSecond: Infinity records every stack; 0 none (leaks are still reported)', async () => {
    const all = setup({ leakDetectionMs: 30_000, leakStacksPerSecond: Infinity }).pool;
    for (let i = 0; i < 50; i++) await all.withLease(async () => undefined);
    const a = await all.acquire();
    expect(all.activeLeases()[0]!.stack).toContain(THIS_FILE);
    await a.release();
    const none = setup({ leakDetectionMs: 30, leakStacksPerSecond: 0 }).pool;
    const leaks: LeakEvent[] = [];
    none.on('leak', (e) => leaks.push(e));
    const b = await none.acquire();
    await waitFor('reported without a stack', () => leaks.length === 1);
    expect(leaks[0]!.stack).toBeUndefined();
    await b.release();
  });

  test('a lease released in time is never reported', async () => {
    const { pool } = setup({ leakDetectionMs: 40 });
    const leaks: LeakEvent[] = [];
    pool.on('leak', (e) => leaks.push(e));
    const quick = await pool.acquire();
    await quick.release();
    const slow = await pool.acquire();
    await waitFor('the slow lease is reported', () => leaks.length > 0);
    expect(leaks.map((l) => l.id)).toEqual([slow.id]);
    await slow.release();
  });

  test.each([
    ['withLease', (p: ReturnType<typeof setup>['pool'], body: () => Promise<void>) => p.withLease(body)],
    ['pool.withTx', (p: ReturnType<typeof setup>['pool'], body: () => Promise<void>) => p.withTx(body)],
    ['withTx(pool, …)', (p: ReturnType<typeof setup>['pool'], body: () => Promise<void>) => withTx(p, body)],
  ])('the stack of a %s leak names the calling file', async (_name, run) => {
    const { pool } = setup({ leakDetectionMs: 20 });
    const leaked = once(pool, 'leak') as Promise<[LeakEvent]>;
    let done!: () => void;
    const scope = run(pool, () => new Promise<void>((resolve) => (done = resolve)));
    const [event] = await leaked;
    expect(event.stack).toContain(THIS_FILE);
    done();
    await scope;
  });

  test('the scan walks the active leases oldest first and stops at the first young one', () => {
    const t = performance.now();
    const records = [t - 5_000, t - 4_000, t - 3_000, ...Array.from({ length: 1_000 }, () => t)].map((acquiredAt) => ({ acquiredAt, leakReported: false }));
    let visited = 0;
    const active = {
      *[Symbol.iterator]() {
        for (const record of records) {
          visited++;
          yield record;
        }
      },
    };
    const reported: number[] = [];
    const detector = new LeakDetector(active as unknown as ActiveLeases<object>, 1_000, (r) => reported.push(r.acquiredAt), undefined);
    expect(detector.scan()).toBe(3);
    expect(reported).toEqual([t - 5_000, t - 4_000, t - 3_000]);
    expect(visited).toBe(4);
    // A second scan reports nothing again, and still stops at the first young lease.
    visited = 0;
    expect(detector.scan()).toBe(0);
    expect(visited).toBe(4);
  });

  test("the detector's timer never keeps the process alive: a process holding a leaked lease exits on its own", async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'fixtures', 'held-lease.ts')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    clearTimeout(killer);
    expect({ code, signal, out: out.trim() }).toEqual({ code: 0, signal: null, out: 'holding lease 1, active 1' });
  });

  test('leakDetectionMs 0: no stack is captured', async () => {
    const { pool } = setup({ leakDetectionMs: 0 });
    const lease = await pool.acquire();
    expect(pool.activeLeases()).toEqual([{ id: lease.id, ageMs: expect.any(Number), inTransaction: false, stack: undefined }]);
    await lease.release();
  });
});

test('activeLeases(): oldest first, with age, transaction state and stack', async () => {
  const { pool } = setup({ leakDetectionMs: 60_000, max: 3 });
  expect(pool.activeLeases()).toEqual([]);
  const a = await pool.acquire();
  const b = await pool.acquire();
  await b.conn.query('BEGIN'); // raw transaction: seen through the adapter's txStatus
  let inTx: ReturnType<typeof pool.activeLeases> = [];
  await pool.withTx(async () => {
    inTx = pool.activeLeases();
  });
  expect(inTx.map((l) => [l.id, l.inTransaction])).toEqual([
    [a.id, false],
    [b.id, true],
    [expect.any(Number), true],
  ]);
  for (const info of inTx) {
    expect(info.ageMs).toBeGreaterThanOrEqual(0);
    expect(info.stack).toContain(THIS_FILE);
  }
  expect(pool.activeLeases().map((l) => l.id)).toEqual([a.id, b.id]);
  await a.release();
  await b.release();
  expect(pool.activeLeases()).toEqual([]);
});

describe('lease deadlines', () => {
  test('withLease timeoutMs: rejects with LEASE_TIMEOUT even if the callback ignores its signal; cancel, destroy, revoke', async () => {
    const { pool, db, registry } = setup({ name: 'leak_deadline', max: 1 });
    const reclaims: ReclaimEvent[] = [];
    pool.on('reclaim', (e) => reclaims.push(e));
    const deadlines: DeadlineEvent[] = [];
    pool.on('deadline', (e) => deadlines.push(e));
    let lease: { id: number; state: string; signal: AbortSignal } | undefined;
    let conn: { query(sql: string): Promise<unknown> } | undefined;
    let statement: Promise<unknown> | undefined;
    const t0 = performance.now();
    const err = await rejection(
      pool.withLease(
        async (c, l) => {
          lease = l;
          conn = c;
          statement = c.query('SLEEP 10000').catch((e: unknown) => e);
          await new Promise(() => undefined); // ignores lease.signal: never settles
        },
        { timeoutMs: 40 },
      ),
    );
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(35);
    expect(ms).toBeLessThan(1_000);
    expect(err).toBeInstanceOf(LeaseTimeoutError);
    expect(err).toMatchObject({ code: 'LEASE_TIMEOUT', timeoutMs: 40 });
    expect(lease!.state).toBe('revoked');
    expect(lease!.signal.aborted).toBe(true);
    expect(lease!.signal.reason).toBe(err);
    const raw = db.connections[0]!;
    expect(db.cancelled).toEqual([raw.id]);
    expect(await statement).toMatchObject({ message: 'canceling statement due to user request' });
    expect(raw.closed).toBe(true);
    const useErr = (() => {
      try {
        return conn!.query('SELECT 1');
      } catch (e) {
        return e;
      }
    })();
    expect(useErr).toBeInstanceOf(LeaseRevokedError);
    expect(useErr).toMatchObject({ code: 'LEASE_REVOKED' });
    // A deadline the caller asked for: its own event and kind, not a leak.
    expect(deadlines).toEqual([{ id: lease!.id as number, ageMs: expect.any(Number), inTransaction: false, timeoutMs: 40, reason: err }]);
    expect(reclaims).toEqual([]);
    expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'leak_deadline', kind: 'deadline' })).toBe(1);
    expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'leak_deadline', kind: 'leak_reclaimed' })).toBe(0);
    expect(await metric(registry, 'leasepool_connections_closed_total', { pool: 'leak_deadline', reason: 'reclaimed' })).toBe(1);
    // The pool is whole again.
    const id = await pool.withLease(async (c) => c.id);
    expect(id).not.toBe(raw.id);
    expect(pool.stats()).toMatchObject({ active: 0, size: 1 });
  });

  test('a callback that honours lease.signal sees it abort at the deadline', async () => {
    const { pool } = setup();
    const err = await rejection(
      pool.withLease(
        (_c, lease) =>
          new Promise((_resolve, reject) => {
            lease.signal.addEventListener('abort', () => reject(new Error('my own abort handling')));
          }),
        { timeoutMs: 20 },
      ),
    );
    // The deadline error wins; the callback's own rejection is not unhandled.
    expect(err).toBeInstanceOf(LeaseTimeoutError);
  });

  test('a callback that finishes in time is not affected by its deadline', async () => {
    const { pool, db } = setup();
    await expect(pool.withLease(async (c) => c.query('SLEEP 5'), { timeoutMs: 1_000 })).resolves.toEqual({ rows: [] });
    expect(db.connections[0]!.closed).toBe(false);
    expect(db.cancelled).toEqual([]);
  });

  test('leaseTimeoutMs revokes a manually acquired lease; release() afterwards is harmless', async () => {
    const { pool, db } = setup({ leaseTimeoutMs: 30 });
    const lease = await pool.acquire();
    const conn = lease.conn;
    const [event] = (await once(pool, 'deadline')) as [DeadlineEvent];
    expect(event).toMatchObject({ id: lease.id, timeoutMs: 30 });
    expect(event.reason).toBeInstanceOf(LeaseTimeoutError);
    expect(lease.state).toBe('revoked');
    expect(lease.signal.aborted).toBe(true);
    expect(() => conn.query('SELECT 1')).toThrow(LeaseRevokedError);
    expect(() => lease.conn).toThrow(LeaseRevokedError);
    await expect(lease.release()).resolves.toBeUndefined();
    await waitFor('the reclaimed connection is closed', () => db.connections[0]!.closed);
    expect(pool.stats()).toMatchObject({ active: 0, size: 0 });
  });

  test('withTx timeoutMs: the transaction is rolled back and never committed', async () => {
    const { pool, db } = setup();
    const err = await rejection(
      pool.withTx(
        async (conn) => {
          await conn.query('INSERT');
          await conn.query('SLEEP 10000');
          await conn.query('AFTER');
        },
        { timeoutMs: 30 },
      ),
    );
    expect(err).toMatchObject({ code: 'LEASE_TIMEOUT' });
    const raw = db.connections[0]!;
    expect(raw.log).toEqual(['BEGIN', 'INSERT', 'SLEEP 10000', 'ROLLBACK']);
    expect(raw.closed).toBe(true);
  });

  test('revoked while a statement outside a transaction runs: the error says it may have been applied (statementInFlight); inside a transaction it does not', async () => {
    const { pool } = setup({ max: 2 });
    const outside = await rejection(pool.withLease((conn) => conn.query('SLEEP 10000'), { timeoutMs: 20 }));
    expect(outside).toMatchObject({ code: 'LEASE_TIMEOUT', statementInFlight: true });
    expect((outside as Error).message).toMatch(/was revoked while a statement sent outside a transaction was running: it may have been applied$/);
    const inside = await rejection(pool.withTx((conn) => conn.query('SLEEP 10000'), { timeoutMs: 20 }));
    expect(inside).toMatchObject({ code: 'LEASE_TIMEOUT', statementInFlight: false });
    const idle = await rejection(pool.withLease(() => new Promise(() => undefined), { timeoutMs: 20 }));
    expect(idle).toMatchObject({ code: 'LEASE_TIMEOUT', statementInFlight: false });
    // close() taking back a lease in the middle of an autocommit statement says the same.
    const running = pool.withLease((conn) => conn.query('SLEEP 10000'));
    await waitFor('the statement is running', () => pool.stats().active === 1);
    await pool.close({ timeoutMs: 20 });
    expect(await rejection(running)).toMatchObject({ code: 'POOL_CLOSED', statementInFlight: true });
  });

  test('a deadline before any leak report: counted as deadline, one info line without a stack, no warning, no reclaim event', async () => {
    const { pool, logs, registry } = setup({ name: 'deadline_quiet', leakDetectionMs: 10_000 });
    const reclaims: ReclaimEvent[] = [];
    pool.on('reclaim', (e) => reclaims.push(e));
    const err = await rejection(pool.withTx((conn) => conn.query('SLEEP 10000'), { timeoutMs: 30 }));
    expect(err).toMatchObject({ code: 'LEASE_TIMEOUT' });
    expect(reclaims).toEqual([]);
    expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'deadline_quiet', kind: 'deadline' })).toBe(1);
    expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'deadline_quiet', kind: 'leak_reclaimed' })).toBe(0);
    expect(await metric(registry, 'leasepool_leaks_detected_total', { pool: 'deadline_quiet' })).toBe(0);
    expect(logs.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
    const infos = logs.filter((l) => l.level === 'info');
    expect(infos).toHaveLength(1);
    expect(infos[0]!.msg).toMatch(/lease #\d+ revoked at its deadline after \d+ ms: Lease #\d+ exceeded its deadline of 30 ms/);
    expect(infos[0]!.msg).not.toContain(THIS_FILE);
  });

  test('a deadline after the leak detector reported the lease: leak_reclaimed, a warning with the acquire stack, a reclaim event', async () => {
    const { pool, logs, registry } = setup({ name: 'deadline_leaked', leakDetectionMs: 20, leaseTimeoutMs: 200 });
    const leaks: LeakEvent[] = [];
    pool.on('leak', (e) => leaks.push(e));
    const deadlines: DeadlineEvent[] = [];
    pool.on('deadline', (e) => deadlines.push(e));
    const lease = await pool.acquire();
    const [event] = (await once(pool, 'reclaim')) as [ReclaimEvent];
    expect(leaks.map((l) => l.id)).toEqual([lease.id]);
    expect(event).toMatchObject({ id: lease.id, kind: 'leak_reclaimed' });
    expect(event.reason).toBeInstanceOf(LeaseTimeoutError);
    expect(event.stack).toContain(THIS_FILE);
    expect(deadlines).toEqual([]);
    expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'deadline_leaked', kind: 'leak_reclaimed' })).toBe(1);
    expect(await metric(registry, 'leasepool_recoveries_total', { pool: 'deadline_leaked', kind: 'deadline' })).toBe(0);
    const reclaimLine = logs.find((l) => l.level === 'warn' && l.msg?.includes('reclaimed (leak_reclaimed)'));
    expect(reclaimLine?.msg).toContain(THIS_FILE);
  });

  test('a logger without info() takes a deadline silently', async () => {
    const warned: string[] = [];
    const { pool } = setup({ name: 'deadline_no_info', logger: { warn: (_o, m) => warned.push(m ?? ''), error: (_o, m) => warned.push(m ?? '') } });
    const err = await rejection(pool.withLease((conn) => conn.query('SLEEP 10000'), { timeoutMs: 20 }));
    expect(err).toBeInstanceOf(LeaseTimeoutError);
    expect(warned).toEqual([]);
    expect(pool.stats().active).toBe(0);
  });

  test('a revoked transaction is neither committed nor retried, even on a retryable error', async () => {
    const { pool, db } = setup();
    const err = await rejection(
      pool.withTx(
        async (conn) => {
          await conn.query('SLEEP 40').catch(() => undefined);
          throw new FakeError('could not serialize access', false, true);
        },
        { timeoutMs: 20, retries: 3, retryBaseDelayMs: 1 },
      ),
    );
    expect(err).toMatchObject({ code: 'LEASE_TIMEOUT' });
    const log = db.connections[0]!.log;
    expect(log.filter((s) => s.startsWith('BEGIN'))).toHaveLength(1);
    expect(log).not.toContain('COMMIT');
    expect(db.connections).toHaveLength(1);
  });
});
