/**
 * The behaviour suite, written once and run against every adapter on its real database
 * (test/pg/behaviour.test.ts, test/mysql/behaviour.test.ts, test/pglite/behaviour.test.ts).
 *
 * Everything goes through the public API (`createPool`, `pool.withTx`, `withTx(pool, …)`,
 * `pool.withLease`, `pool.acquire`); assertions are on rows read from a separate connection
 * (the target's "admin"), on transaction status, on metric values and on error codes.
 * A target declares what its database can do; tests that need a capability it lacks are not
 * defined for it (never skipped at run time).
 */
import { inspect } from 'node:util';
import { Registry } from 'prom-client';
import {
  ConfigError,
  ConnectError,
  createPool,
  LeaseReleasedError,
  NestedAcquireError,
  TxAbortedError,
  withTx,
  type Adapter,
  type IsolationLevel,
  type Pool,
  type PoolOptions,
} from '../../src';
import { captureLogger, metric, rejection, waitFor, type LogEntry } from '../helpers/unit';

export type Row = Record<string, unknown>;

/** A connection of the test's own, never one of the pool's: reads what others committed. */
export interface Admin {
  query(sql: string, params?: unknown[]): Promise<Row[]>;
  close(): Promise<void>;
}

export interface BehaviourCapabilities {
  /** Several independent sessions (false for PGlite: one session, so no concurrent transactions). */
  readonly concurrentSessions: boolean;
  /**
   * A pool connection keeps one server session from connect to close, so session state (a temporary
   * table) follows the connection: false for PGlite (one embedded session for all) and behind
   * PgBouncer in transaction pooling (a new server session per transaction).
   */
  readonly sessionPerConnection: boolean;
  /** A server backend can be killed from another session. */
  readonly kill: boolean;
  /** The adapter can cancel a running statement. */
  readonly cancel: boolean;
  /** Connecting can fail on credentials (PGlite has none). */
  readonly credentials: boolean;
  /** A failed statement aborts the whole transaction (PostgreSQL), rather than just itself (MySQL). */
  readonly abortsOnError: boolean;
}

/** A pool adapter whose connect fails on a wrong password, and the secrets that must never show. */
export interface BadCredentials<C extends object> {
  readonly adapter: Adapter<C>;
  readonly secrets: readonly string[];
  cleanup(): Promise<void>;
}

export interface BehaviourTarget<C extends object> {
  /** Shown in test names: 'pg', 'mysql2', 'pglite'. */
  readonly name: string;
  /** Table name prefix, unique per test file (parallel jest workers share the server). */
  readonly prefix: string;
  readonly capabilities: BehaviourCapabilities;
  /** Once before the suite (e.g. start the PGlite instance). */
  setup?(): Promise<void>;
  /** Once after the suite. */
  teardown?(): Promise<void>;
  /** A fresh adapter for one pool. */
  adapter(): Adapter<C>;
  openAdmin(): Promise<Admin>;
  /** Run one statement on a (leased) connection; the rows of a result set, `[]` otherwise. */
  query(conn: C, sql: string, params?: unknown[]): Promise<Row[]>;
  /** Placeholder for the n-th parameter: `$n` or `?`. */
  ph(n: number): string;
  /** The statement that opens a transaction by hand (`BEGIN`, `START TRANSACTION`). */
  readonly beginSql: string;
  /** The server-side id of the connection (backend pid, CONNECTION_ID()). */
  serverId(conn: C): Promise<number>;
  /** Transaction status of a connection as the server/driver reports it. */
  txStatus(conn: C): Promise<'idle' | 'in_tx' | 'failed'>;
  /** Kill a backend from the admin session; resolves once the server has ended it. */
  kill?(admin: Admin, id: number): Promise<void>;
  /** A ConnectError through a wrong password. */
  badCredentials?(): Promise<BadCredentials<C>>;
  /** The last statement the server saw from backend `id`, where the server keeps it. */
  lastStatement?(admin: Admin, id: number): Promise<string>;
  /** A statement that runs for `seconds` on the server (needed with `capabilities.cancel`). */
  sleepSql?(seconds: number): string;
  /** The statement backend `id` is running now, if any (needed with `capabilities.cancel`). */
  runningStatement?(admin: Admin, id: number): Promise<string | undefined>;
}

/** A barrier for `parties` callers; rejects if not all arrive within `timeoutMs` of the first. */
export function barrier(parties: number, timeoutMs = 5_000): { arrive(): Promise<void> } {
  let arrived = 0;
  let release: (() => void) | undefined;
  let fail: ((err: Error) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const all = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  return {
    arrive() {
      arrived++;
      if (timer === undefined) {
        timer = setTimeout(() => fail?.(new Error(`barrier: ${arrived}/${parties} arrived within ${timeoutMs} ms`)), timeoutMs);
        timer.unref();
      }
      if (arrived === parties) {
        clearTimeout(timer);
        release?.();
      }
      return all;
    },
  };
}

/** The adapter with a log of every statement sent: control statements (exec) and the user's (guard hook). */
export function spied<C extends object>(base: Adapter<C>): { adapter: Adapter<C>; sent: string[] } {
  const sent: string[] = [];
  const adapter: Adapter<C> = {
    ...base,
    exec(conn: C, sql: string): Promise<unknown> {
      sent.push(sql);
      return base.exec(conn, sql);
    },
    observeStatement(conn: C, method: string, firstArg: unknown): void {
      const text = typeof firstArg === 'string' ? firstArg : String((firstArg as { sql?: unknown; text?: unknown } | null)?.sql ?? (firstArg as { text?: unknown } | null)?.text);
      sent.push(text);
      base.observeStatement?.(conn, method, firstArg);
    },
  };
  return { adapter, sent };
}

/** Every surface of an error a user or a log could show. */
export function errorSurfaces(err: unknown): string {
  const e = err as Error & { cause?: Error };
  return [
    e.message,
    e.stack,
    String(e.cause?.message),
    String(e.cause?.stack),
    inspect(err, { showHidden: true, depth: 8 }),
    JSON.stringify(err, Object.getOwnPropertyNames(err)),
  ].join('\n');
}

export interface PoolHandle<C extends object> {
  readonly pool: Pool<C>;
  readonly registry: Registry;
  readonly logs: LogEntry[];
  /** Statements sent by this pool, in order. */
  readonly sent: string[];
  /** Errors the pool emitted on 'error'. */
  readonly errors: Error[];
  m(name: string, labels?: Record<string, string>): Promise<number>;
}

/** Shared pool bookkeeping for a test file: every pool made is closed after each test. */
export function poolMaker<C extends object>(adapterOf: () => Adapter<C>, defaults: PoolOptions): {
  make(options?: PoolOptions, adapter?: Adapter<C>): PoolHandle<C>;
  closeAll(): Promise<void>;
} {
  const pools: Pool<C>[] = [];
  return {
    make(options = {}, adapter = adapterOf()) {
      const { adapter: spy, sent } = spied(adapter);
      const registry = new Registry();
      const { logger, entries } = captureLogger();
      const pool = createPool(spy, { leakDetectionMs: 0, acquireTimeoutMs: 10_000, logger, metrics: { registry }, ...defaults, ...options });
      const errors: Error[] = [];
      pool.on('error', (err) => errors.push(err));
      pools.push(pool);
      return { pool, registry, logs: entries, sent, errors, m: (name, labels) => metric(registry, name, labels) };
    },
    async closeAll() {
      await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 2_000 })));
    },
  };
}

/** Poll an asynchronous condition (server state, a metric set after an async close); bounded. */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function describeBehaviour<C extends object>(target: BehaviourTarget<C>): void {
  const caps = target.capabilities;
  const ROWS = `${target.prefix}_rows`;
  const COUNTER = `${target.prefix}_counter`;
  const $ = (n: number): string => target.ph(n);
  const pools = poolMaker(() => target.adapter(), { name: target.prefix });
  const makePool = pools.make;
  let admin: Admin;

  const insert = (conn: C, id: number): Promise<Row[]> => target.query(conn, `INSERT INTO ${ROWS} (id, v) VALUES (${$(1)}, ${$(2)})`, [id, 0]);
  const ids = async (): Promise<number[]> => (await admin.query(`SELECT id FROM ${ROWS} ORDER BY id`)).map((r) => Number(r.id));
  const idsOn = async (conn: C): Promise<number[]> => (await target.query(conn, `SELECT id FROM ${ROWS} ORDER BY id`)).map((r) => Number(r.id));
  const counter = async (id: number): Promise<number> => Number((await admin.query(`SELECT v FROM ${COUNTER} WHERE id = ${$(1)}`, [id]))[0]?.v);

  beforeAll(async () => {
    await target.setup?.();
    admin = await target.openAdmin();
    for (const table of [ROWS, COUNTER]) {
      await admin.query(`DROP TABLE IF EXISTS ${table}`);
      await admin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL)`);
    }
  }, 60_000);

  beforeEach(async () => {
    await admin.query(`DELETE FROM ${ROWS}`);
    await admin.query(`DELETE FROM ${COUNTER}`);
    await admin.query(`INSERT INTO ${COUNTER} (id, v) VALUES (1, 0), (2, 0)`);
  });

  afterEach(async () => {
    await pools.closeAll();
  });

  afterAll(async () => {
    if (admin !== undefined) {
      for (const table of [ROWS, COUNTER]) await admin.query(`DROP TABLE IF EXISTS ${table}`);
      await admin.close();
    }
    await target.teardown?.();
  });

  describe(`${target.name}: commit and rollback`, () => {
    test('a committed withTx is visible to another connection, and only after COMMIT', async () => {
      const { pool, m } = makePool();
      const result = await pool.withTx(async (conn, tx) => {
        expect(tx.depth).toBe(1);
        expect(tx.attempt).toBe(1);
        expect(tx.lease.inTransaction).toBe(true);
        await insert(conn, 1);
        expect(await target.txStatus(conn)).toBe('in_tx');
        if (caps.concurrentSessions) expect(await ids()).toEqual([]); // not committed yet
        return 'done';
      });
      expect(result).toBe('done');
      expect(await ids()).toEqual([1]);

      // The function form is the same thing.
      await withTx(pool, async (conn) => {
        await insert(conn, 2);
      });
      expect(await ids()).toEqual([1, 2]);
      expect(await m('leasepool_transactions_total', { outcome: 'commit' })).toBe(2);
      expect(await m('leasepool_transactions_total', { outcome: 'rollback' })).toBe(0);
      expect(await m('leasepool_recoveries_total', { kind: 'rollback_on_release' })).toBe(0);
      // The connection went back idle, not in a transaction.
      await pool.withLease(async (conn) => {
        expect(await target.txStatus(conn)).toBe('idle');
      });
    });

    test('a throw inside withTx leaves no row behind; the caller gets the original error object', async () => {
      const { pool, m } = makePool({ max: 1 });
      const boom = new Error('boom');
      const err = await rejection(
        pool.withTx(async (conn) => {
          await insert(conn, 1);
          await insert(conn, 2);
          throw boom;
        }),
      );
      expect(err).toBe(boom);
      expect(await ids()).toEqual([]);

      // A driver error (duplicate key) is passed through as the very object the driver threw.
      let thrown: unknown;
      const err2 = await rejection(
        pool.withTx(async (conn) => {
          await insert(conn, 3);
          try {
            await insert(conn, 3);
          } catch (e) {
            thrown = e;
            throw e;
          }
        }),
      );
      expect(thrown).toBeDefined();
      expect(err2).toBe(thrown);
      expect(await ids()).toEqual([]);

      // A thrown primitive too.
      await expect(pool.withTx(() => Promise.reject('plain string'))).rejects.toBe('plain string');

      expect(await m('leasepool_transactions_total', { outcome: 'rollback' })).toBe(3);
      expect(await m('leasepool_transactions_total', { outcome: 'commit' })).toBe(0);
      // withTx rolled back itself: the release path found nothing to recover.
      expect(await m('leasepool_recoveries_total', { kind: 'rollback_on_release' })).toBe(0);
      await pool.withLease(async (conn) => {
        expect(await target.txStatus(conn)).toBe('idle');
      });
    });
  });

  describe(`${target.name}: a failed statement whose error the body swallows`, () => {
    const swallowing = (conn: C): Promise<void> =>
      (async () => {
        await insert(conn, 1);
        await insert(conn, 1).catch(() => undefined); // duplicate key, error swallowed
      })();

    if (caps.abortsOnError) {
      test('the database aborted the transaction: withTx rejects with TX_ABORTED, never reports a commit', async () => {
        const { pool, m, sent } = makePool({ max: 1 });
        const err = await rejection(
          pool.withTx(async (conn) => {
            await swallowing(conn);
            return 'looks fine';
          }),
        );
        expect(err).toBeInstanceOf(TxAbortedError);
        expect((err as TxAbortedError).code).toBe('TX_ABORTED');
        expect(await ids()).toEqual([]);
        expect(sent).not.toContain('COMMIT'); // COMMIT would have been a silent ROLLBACK
        expect(await m('leasepool_transactions_total', { outcome: 'commit' })).toBe(0);
        expect(await m('leasepool_transactions_total', { outcome: 'rollback' })).toBe(1);
        expect(await m('leasepool_recoveries_total', { kind: 'rollback_on_release' })).toBe(0);
        await pool.withLease(async (conn) => {
          expect(await target.txStatus(conn)).toBe('idle');
        });
        // In a savepoint the same is an error of the nested scope; the outer transaction goes on.
        await pool.withTx(async (conn) => {
          await insert(conn, 5);
          expect(await rejection(pool.withTx(async (c) => swallowing(c)))).toBeDefined();
          await insert(conn, 6);
        });
        expect(await ids()).toEqual([5, 6]);
      });
    } else {
      test('only the statement failed: the transaction goes on and commits the rest', async () => {
        const { pool, m } = makePool({ max: 1 });
        await pool.withTx(async (conn) => {
          await swallowing(conn);
          await insert(conn, 2);
        });
        expect(await ids()).toEqual([1, 2]);
        expect(await m('leasepool_transactions_total', { outcome: 'commit' })).toBe(1);
      });
    }
  });

  describe(`${target.name}: nested transactions`, () => {
    test('an inner failure rolls back only the inner work; the outer commit keeps the rest', async () => {
      const { pool, m } = makePool();
      await pool.withTx(async (conn) => {
        const outerId = await target.serverId(conn);
        await insert(conn, 1);
        let driverError: unknown;
        const err = await rejection(
          pool.withTx(async (inner, tx) => {
            expect(tx.depth).toBe(2);
            expect(tx.savepoint).toMatch(/^lp_sp_\d+$/);
            expect(await target.serverId(inner)).toBe(outerId);
            await insert(inner, 2);
            try {
              await insert(inner, 1); // duplicate key: on PostgreSQL this aborts the transaction
            } catch (e) {
              driverError = e;
              throw e;
            }
          }),
        );
        expect(err).toBe(driverError);
        // ROLLBACK TO SAVEPOINT made the outer transaction usable again.
        expect(await target.txStatus(conn)).toBe('in_tx');
        await insert(conn, 3);
        expect(await idsOn(conn)).toEqual([1, 3]);
      });
      expect(await ids()).toEqual([1, 3]);
      expect(await m('leasepool_transactions_total', { outcome: 'commit' })).toBe(1);
      expect(await m('leasepool_transactions_total', { outcome: 'rollback' })).toBe(0);
    });

    test('three levels: each level undoes only its own subtree', async () => {
      const { pool } = makePool();
      const depths: number[] = [];
      await withTx(pool, async (c1, t1) => {
        depths.push(t1.depth);
        await insert(c1, 1);
        await withTx(pool, async (c2, t2) => {
          depths.push(t2.depth);
          await insert(c2, 2);
          const level3 = new Error('level 3');
          expect(
            await rejection(
              pool.withTx(async (c3, t3) => {
                depths.push(t3.depth);
                await insert(c3, 3);
                throw level3;
              }),
            ),
          ).toBe(level3);
          await pool.withTx(async (c3) => {
            await insert(c3, 4);
          });
          await insert(c2, 5);
        });
        // A failing level 2 takes its (successful) level-3 child with it.
        const level2 = new Error('level 2');
        expect(
          await rejection(
            pool.withTx(async (c2) => {
              await insert(c2, 6);
              await pool.withTx(async (c3) => {
                await insert(c3, 7);
              });
              throw level2;
            }),
          ),
        ).toBe(level2);
        await insert(c1, 8);
      });
      expect(depths).toEqual([1, 2, 3]);
      expect(await ids()).toEqual([1, 2, 4, 5, 8]);
    });

    test('concurrent nested withTx on one connection (Promise.all) all complete; savepoints never interleave', async () => {
      const { pool, sent, m } = makePool();
      await pool.withTx(async (conn) => {
        const outerId = await target.serverId(conn);
        const serverIds = await Promise.all([
          pool.withTx(async (c) => {
            await insert(c, 10);
            await new Promise((resolve) => setImmediate(resolve));
            await insert(c, 11);
            return target.serverId(c);
          }),
          pool.withTx(async (c) => {
            await insert(c, 20);
            await insert(c, 21);
            return target.serverId(c);
          }),
        ]);
        expect(serverIds).toEqual([outerId, outerId]);
      });
      expect(await ids()).toEqual([10, 11, 20, 21]);

      // One of three concurrent scopes fails after its siblings were started: only its rows go.
      const boom = new Error('first scope fails');
      await pool.withTx(async () => {
        const results = await Promise.allSettled([
          pool.withTx(async (c) => {
            await insert(c, 30);
            await new Promise((resolve) => setImmediate(resolve));
            await insert(c, 31);
            throw boom;
          }),
          pool.withTx(async (c) => {
            await insert(c, 40);
            await insert(c, 41);
          }),
          pool.withTx(async (c) => {
            await insert(c, 50);
          }),
        ]);
        expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
        expect((results[0] as PromiseRejectedResult).reason).toBe(boom);
      });
      expect(await ids()).toEqual([10, 11, 20, 21, 40, 41, 50]);
      expect(await m('leasepool_transactions_total', { outcome: 'commit' })).toBe(2);

      // The statement log: every savepoint is closed (released or rolled back) before the next opens.
      const open: string[] = [];
      for (const statement of sent) {
        const sp = /^SAVEPOINT (\w+)$/.exec(statement);
        if (sp !== null) {
          expect(open).toEqual([]);
          open.push(sp[1] as string);
          continue;
        }
        const end = /^RELEASE SAVEPOINT (\w+)$/.exec(statement);
        if (end !== null) {
          expect(open).toEqual([end[1]]);
          open.pop();
        }
      }
      expect(open).toEqual([]);
      expect(sent.filter((s) => s.startsWith('SAVEPOINT '))).toHaveLength(5);
    });

    test('withLease inside a transaction joins it: same connection, and its write rolls back with the transaction', async () => {
      const { pool, m } = makePool({ max: 2 });
      // A helper written against the pool, unaware of any transaction.
      const audit = (id: number): Promise<number[]> =>
        pool.withLease(async (conn) => {
          await insert(conn, id);
          return idsOn(conn);
        });
      const boom = new Error('undo everything');
      const err = await rejection(
        pool.withTx(async (conn, tx) => {
          const outerId = await target.serverId(conn);
          await insert(conn, 1);
          await pool.withLease(async (c, lease) => {
            expect(lease).toBe(tx.lease);
            expect(await target.serverId(c)).toBe(outerId);
          });
          expect(await audit(2)).toEqual([1, 2]); // it sees the transaction's own uncommitted row
          throw boom;
        }),
      );
      expect(err).toBe(boom);
      expect(await ids()).toEqual([]);
      expect(await m('leasepool_connections_created_total')).toBe(1);
      expect(await m('leasepool_acquires_total', { outcome: 'success' })).toBe(1);

      // And the same helper commits with the transaction when it succeeds.
      await pool.withTx(async () => {
        await audit(3);
      });
      expect(await ids()).toEqual([3]);
    });
  });

  if (caps.concurrentSessions) {
    describe(`${target.name}: retries`, () => {
      test('concurrent serializable increments of one counter, with retries, end exactly at the sum', async () => {
        const { pool, m } = makePool({ max: 4 });
        const WORKERS = 3;
        const INCREMENTS = 5;
        // The first increment of every worker reads, then waits until all have read: a real
        // read-modify-write conflict (PostgreSQL 40001; MariaDB 1213 on the shared locks).
        const gate = barrier(WORKERS);
        const attempts: number[] = [];
        await Promise.all(
          Array.from({ length: WORKERS }, async () => {
            for (let i = 0; i < INCREMENTS; i++) {
              await pool.withTx(
                async (conn, tx) => {
                  attempts.push(tx.attempt);
                  const [row] = await target.query(conn, `SELECT v FROM ${COUNTER} WHERE id = 1`);
                  const v = Number(row?.v);
                  if (i === 0 && tx.attempt === 1) await gate.arrive();
                  await target.query(conn, `UPDATE ${COUNTER} SET v = ${$(1)} WHERE id = 1`, [v + 1]);
                },
                { isolation: 'serializable', retries: 60, retryBaseDelayMs: 2, retryMaxDelayMs: 40 },
              );
            }
          }),
        );
        expect(await counter(1)).toBe(WORKERS * INCREMENTS);
        const retries = await m('leasepool_transactions_total', { outcome: 'retry' });
        expect(retries).toBeGreaterThan(0);
        expect(attempts.filter((a) => a > 1)).toHaveLength(retries);
        expect(await m('leasepool_transactions_total', { outcome: 'commit' })).toBe(WORKERS * INCREMENTS);
        // Every retry followed a rollback, and nothing failed for good.
        expect(await m('leasepool_transactions_total', { outcome: 'rollback' })).toBe(retries);
      });

      test('a real deadlock (two rows locked in opposite order) is retried and both transactions complete', async () => {
        const { pool, m } = makePool({ max: 2 });
        const gate = barrier(2);
        const runs = [0, 0];
        const transfer = (k: number, first: number, second: number): Promise<void> =>
          pool.withTx(
            async (conn, tx) => {
              runs[k] = (runs[k] ?? 0) + 1;
              await target.query(conn, `UPDATE ${COUNTER} SET v = v + 1 WHERE id = ${$(1)}`, [first]);
              if (tx.attempt === 1) await gate.arrive(); // both hold their first lock
              await target.query(conn, `UPDATE ${COUNTER} SET v = v + 1 WHERE id = ${$(1)}`, [second]);
            },
            { retries: 3, retryBaseDelayMs: 1 },
          );
        await Promise.all([transfer(0, 1, 2), transfer(1, 2, 1)]);
        expect(await counter(1)).toBe(2);
        expect(await counter(2)).toBe(2);
        // One deadlock victim, rerun (on a loaded machine its rerun may itself lose a lock race once
        // more); the winner ran once, and every rerun is counted.
        expect(Math.min(...runs)).toBe(1);
        expect(Math.max(...runs)).toBeGreaterThanOrEqual(2);
        expect(await m('leasepool_transactions_total', { outcome: 'retry' })).toBe((runs[0] ?? 0) + (runs[1] ?? 0) - 2);
        expect(await m('leasepool_transactions_total', { outcome: 'commit' })).toBe(2);
      });
    });
  }

  describe(`${target.name}: the release path cleans up after the user`, () => {
    test('raw BEGIN + failing query, then release: the next lease of that connection is idle; rollback_on_release +1 exactly', async () => {
      const { pool, m } = makePool({ max: 1 });
      const lease = await pool.acquire();
      const id = await target.serverId(lease.conn);
      await target.query(lease.conn, target.beginSql);
      await rejection(target.query(lease.conn, `SELECT nope FROM ${ROWS}_missing`));
      await lease.release();
      expect(await m('leasepool_recoveries_total', { kind: 'rollback_on_release' })).toBe(1);

      await pool.withLease(async (conn) => {
        expect(await target.serverId(conn)).toBe(id); // the same connection, kept
        expect(await target.txStatus(conn)).toBe('idle');
        await insert(conn, 5); // autocommit again
      });
      expect(await ids()).toEqual([5]);
      expect(await m('leasepool_recoveries_total', { kind: 'rollback_on_release' })).toBe(1);
      expect(await m('leasepool_connections_created_total')).toBe(1);
    });

    test('raw BEGIN + INSERT without COMMIT, then release: the write is never visible', async () => {
      const { pool, m } = makePool({ max: 1 });
      const lease = await pool.acquire();
      await target.query(lease.conn, target.beginSql);
      await insert(lease.conn, 7);
      await lease.release();
      expect(await ids()).toEqual([]);
      expect(await m('leasepool_recoveries_total', { kind: 'rollback_on_release' })).toBe(1);

      // The same through `await using`, with the block ending by a throw.
      const boom = new Error('block failed');
      const err = await rejection(
        (async () => {
          await using scoped = await pool.acquire();
          await target.query(scoped.conn, target.beginSql);
          await insert(scoped.conn, 8);
          throw boom;
        })(),
      );
      expect(err).toBe(boom);
      expect(await ids()).toEqual([]);
      expect(await m('leasepool_recoveries_total', { kind: 'rollback_on_release' })).toBe(2);
      await pool.withLease(async (conn) => {
        expect(await target.txStatus(conn)).toBe('idle');
        expect(await idsOn(conn)).toEqual([]);
      });
    });
  });

  if (caps.kill && target.kill !== undefined) {
    const kill = target.kill.bind(target);
    describe(`${target.name}: killed backends`, () => {
      test('killing the backend of a leased connection: the next query fails, the connection is destroyed at release, the pool goes on', async () => {
        const { pool, m } = makePool({ max: 2 });
        const lease = await pool.acquire();
        const id = await target.serverId(lease.conn);
        await kill(admin, id);
        await rejection(target.query(lease.conn, 'SELECT 1'));
        await lease.release();
        await eventually('the broken connection is closed', async () => (await m('leasepool_connections_closed_total', { reason: 'broken' })) === 1);
        expect(await m('leasepool_recoveries_total', { kind: 'broken_connection' })).toBe(1);
        expect(await m('leasepool_recoveries_total', { kind: 'rollback_on_release' })).toBe(0);

        const next = await pool.withLease(async (conn) => {
          await insert(conn, 1);
          return target.serverId(conn);
        });
        expect(next).not.toBe(id);
        expect(await ids()).toEqual([1]);
        expect(await m('leasepool_connections_closed_total', { reason: 'broken' })).toBe(1);
      });

      test('killing idle pooled connections: no crash, pool.on("error") hears of each, the next withLease works', async () => {
        const { pool, errors, m } = makePool({ max: 2 });
        const leases = await Promise.all([pool.acquire(), pool.acquire()]);
        const killed = await Promise.all(leases.map((l) => target.serverId(l.conn)));
        for (const l of leases) await l.release();
        expect(pool.stats().idle).toBe(2);
        for (const id of killed) await kill(admin, id);
        await waitFor('both idle connections reported', () => errors.length >= 2, 5_000);
        expect(errors).toHaveLength(2);
        for (const err of errors) expect(err).toBeInstanceOf(Error);

        const id = await pool.withLease(async (conn) => {
          await insert(conn, 1);
          return target.serverId(conn);
        });
        expect(killed).not.toContain(id);
        expect(await ids()).toEqual([1]);
        await eventually('both dead connections closed', async () => (await m('leasepool_connections_closed_total', { reason: 'broken' })) === 2);
      });
    });
  }

  if (caps.cancel && target.sleepSql !== undefined && target.runningStatement !== undefined) {
    const sleepSql = target.sleepSql.bind(target);
    const running = target.runningStatement.bind(target);
    describe(`${target.name}: cancel`, () => {
      test('a transaction deadline during a running statement: LEASE_TIMEOUT, the statement cancelled on the server, nothing committed', async () => {
        const { pool, m } = makePool({ max: 2 });
        let id: number | undefined;
        const sleep = sleepSql(20);
        const startedAt = Date.now();
        const err = await rejection(
          pool.withTx(
            async (conn) => {
              id = await target.serverId(conn);
              await insert(conn, 1);
              await target.query(conn, sleep);
            },
            { timeoutMs: 300 },
          ),
        );
        expect((err as { code?: string }).code).toBe('LEASE_TIMEOUT');
        // Closing the socket alone would leave the sleep running on the server (MariaDB notices a gone
        // client only every 5 s): the cancel stopped it, well within that.
        const deadline = startedAt + 4_000;
        await eventually('the server no longer runs the statement', async () => (await running(admin, id as number)) !== sleep, Math.max(0, deadline - Date.now()));
        expect(await ids()).toEqual([]);
        expect(await m('leasepool_recoveries_total', { kind: 'deadline' })).toBe(1);
        expect(await m('leasepool_recoveries_total', { kind: 'leak_reclaimed' })).toBe(0);
        await eventually('the reclaimed connection is closed', async () => (await m('leasepool_connections_closed_total', { reason: 'reclaimed' })) === 1);
        await pool.withTx(async (conn) => {
          await insert(conn, 2);
        });
        expect(await ids()).toEqual([2]);
      });
    });
  }

  describe(`${target.name}: errors with stable codes`, () => {
    test('NestedAcquireError instead of a hang: max 1 and a nested requiresNew transaction', async () => {
      const { pool, m } = makePool({ max: 1, acquireTimeoutMs: 5_000 });
      const err = await rejection(
        pool.withTx(async (conn) => {
          await insert(conn, 1);
          await pool.withTx(
            async (c) => {
              await insert(c, 2);
            },
            { propagation: 'requiresNew' },
          );
        }),
      );
      expect(err).toBeInstanceOf(NestedAcquireError);
      expect((err as NestedAcquireError).code).toBe('NESTED_ACQUIRE');
      expect(await m('leasepool_acquires_total', { outcome: 'rejected' })).toBe(1);
      expect(await m('leasepool_acquires_total', { outcome: 'timeout' })).toBe(0);
      expect(await ids()).toEqual([]); // the outer transaction rolled back
      await pool.withTx(async (conn) => {
        await insert(conn, 3);
      });
      expect(await ids()).toEqual([3]);
    });

    if (caps.concurrentSessions) {
      test('requiresNew with room in the pool: a second connection whose commit outlives the outer rollback', async () => {
        const { pool } = makePool({ max: 2 });
        const boom = new Error('outer fails');
        const err = await rejection(
          pool.withTx(async (conn) => {
            const outerId = await target.serverId(conn);
            await insert(conn, 1);
            const innerId = await pool.withTx(
              async (c, tx) => {
                expect(tx.depth).toBe(1);
                await insert(c, 100);
                return target.serverId(c);
              },
              { propagation: 'requiresNew' },
            );
            expect(innerId).not.toBe(outerId);
            throw boom;
          }),
        );
        expect(err).toBe(boom);
        expect(await ids()).toEqual([100]);
      });
    }

    test('an SQL-looking isolation level is a ConfigError and nothing is sent', async () => {
      const { pool, sent, m } = makePool();
      let ran = false;
      const evil = `serializable; DROP TABLE ${ROWS}`;
      const err = await rejection(
        pool.withTx(
          async () => {
            ran = true;
          },
          { isolation: evil as IsolationLevel },
        ),
      );
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).code).toBe('INVALID_CONFIG');
      expect((err as ConfigError).fields).toEqual(['isolation']);
      expect(ran).toBe(false);
      expect(sent).toEqual([]);
      expect(await m('leasepool_connections_created_total')).toBe(0);
      expect(await m('leasepool_acquires_total', { outcome: 'success' })).toBe(0);
      expect(pool.stats().size).toBe(0);
      expect(await ids()).toEqual([]); // the table is still there

      // Inside an open transaction: refused before any statement; the transaction goes on untouched.
      await pool.withTx(async (conn) => {
        const id = await target.serverId(conn);
        await insert(conn, 1);
        const before = sent.length;
        const err2 = await rejection(
          pool.withTx(async () => undefined, { isolation: `read committed'; DROP TABLE ${ROWS}; --` as IsolationLevel }),
        );
        expect(err2).toBeInstanceOf(ConfigError);
        expect(sent.length).toBe(before);
        if (target.lastStatement !== undefined && caps.concurrentSessions) {
          expect(await target.lastStatement(admin, id)).toMatch(/^INSERT INTO/);
        }
        expect(await target.txStatus(conn)).toBe('in_tx');
        await insert(conn, 2);
      });
      expect(await ids()).toEqual([1, 2]);
      expect(sent.some((s) => /DROP/i.test(s))).toBe(false);
    });

    if (caps.sessionPerConnection) {
      test('session state never reaches the next borrower: resetOnRelease resets the connection, without it the changed connection is closed', async () => {
        const TEMP = `${target.prefix}_session_tmp`;
        const leftBehind = async (resetOnRelease: boolean): Promise<{ sameConnection: boolean; tempTableSeen: boolean }> => {
          const { pool, m } = makePool({ max: 1, resetOnRelease });
          const first = await pool.withLease(async (conn) => {
            await target.query(conn, `CREATE TEMPORARY TABLE ${TEMP} (x int)`);
            return target.serverId(conn);
          });
          const seen = await pool.withLease(async (conn) => ({
            sameConnection: (await target.serverId(conn)) === first,
            tempTableSeen: await target.query(conn, `SELECT x FROM ${TEMP}`).then(
              () => true,
              () => false,
            ),
          }));
          // Without a reset the changed session is not handed on: the connection is closed instead.
          expect(await m('leasepool_connections_closed_total', { reason: 'reset' })).toBe(resetOnRelease ? 0 : 1);
          await pool.close();
          return seen;
        };
        expect(await leftBehind(false)).toEqual({ sameConnection: false, tempTableSeen: false });
        expect(await leftBehind(true)).toEqual({ sameConnection: true, tempTableSeen: false });
      });

      test('resetOnRelease: a connection whose reset fails is destroyed, counted, and the pool goes on', async () => {
        const base = target.adapter();
        const refused = new Error('reset refused');
        const { pool, m } = makePool({ max: 1, resetOnRelease: true }, { ...base, reset: () => Promise.reject(refused) });
        const first = await pool.withLease((conn) => target.serverId(conn));
        await eventually('the connection is closed', async () => (await m('leasepool_connections_closed_total', { reason: 'reset' })) === 1);
        const second = await pool.withLease(async (conn) => {
          await insert(conn, 1);
          return target.serverId(conn);
        });
        expect(second).not.toBe(first);
        expect(await ids()).toEqual([1]);
        expect(await m('leasepool_connections_created_total')).toBe(2);
      });
    }

    test('use after release: LEASE_RELEASED, and the pool is not disturbed', async () => {
      const { pool } = makePool({ max: 1 });
      const lease = await pool.acquire();
      const conn = lease.conn;
      await lease.release();
      expect(lease.state).toBe('released');
      const err = await rejection(Promise.resolve().then(() => target.query(conn, 'SELECT 1')));
      expect(err).toBeInstanceOf(LeaseReleasedError);
      expect((err as LeaseReleasedError).code).toBe('LEASE_RELEASED');
      expect(() => lease.conn).toThrow(LeaseReleasedError);
      await expect(lease.release()).resolves.toBeUndefined(); // idempotent

      const escaped = await pool.withLease(async (c) => c);
      const err2 = await rejection(Promise.resolve().then(() => target.query(escaped, 'SELECT 1')));
      expect((err2 as LeaseReleasedError).code).toBe('LEASE_RELEASED');

      const escapedTx = await pool.withTx(async (c) => c);
      const err3 = await rejection(Promise.resolve().then(() => insert(escapedTx, 9)));
      expect((err3 as LeaseReleasedError).code).toBe('LEASE_RELEASED');
      expect(await ids()).toEqual([]);

      await pool.withLease(async (c) => {
        expect(await target.txStatus(c)).toBe('idle');
      });
    });

    if (caps.credentials && target.badCredentials !== undefined) {
      const badCredentials = target.badCredentials.bind(target);
      test('wrong password: ConnectError (CONNECT_FAILED) through withLease; no password in message, stack, cause or logs', async () => {
        const bad = await badCredentials();
        try {
          const { pool, logs, m } = makePool({ connectTimeoutMs: 3_000, acquireTimeoutMs: 5_000 }, bad.adapter);
          let ran = false;
          const err = await rejection(
            pool.withLease(async () => {
              ran = true;
            }),
          );
          expect(ran).toBe(false);
          expect(err).toBeInstanceOf(ConnectError);
          expect((err as ConnectError).code).toBe('CONNECT_FAILED');
          expect((err as Error).cause).toBeDefined();
          const surfaces = errorSurfaces(err) + '\n' + inspect(logs, { depth: 8 });
          for (const secret of bad.secrets) expect(surfaces).not.toContain(secret);
          expect(await m('leasepool_acquires_total', { outcome: 'error' })).toBe(1);
          expect(await m('leasepool_connections_created_total')).toBe(0);
          await pools.closeAll();
        } finally {
          await bad.cleanup();
        }
      });
    }
  });
}
