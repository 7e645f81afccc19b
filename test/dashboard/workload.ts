/**
 * A real leasepool pool (over the in-memory fake adapter) driven through everything the dashboard
 * shows, with its prom-client registry served on 127.0.0.1 for Prometheus to scrape:
 * contention (waiting callers, acquire waits, saturation), withTx commits and rollbacks, a raw
 * BEGIN left open (rollback_on_release), leaks (leakDetectionMs), reclaimed leases
 * (leaseTimeoutMs), a scoped lease past its deadline (withLease timeoutMs), acquire timeouts,
 * retried serialization failures, broken connections, connection churn (maxUses), and reads through
 * a cluster (the pool is its one host) for the cluster panels.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import { createCluster, type SessionRole } from '../../src/index';
import { FakeError, fakeAdapter, type FakeConnection } from '../helpers/fake-adapter';
import { serveRegistry } from './metrics-server';

export const WORKLOAD_POOL = 'dashboard';

/** Error codes the workload provokes on purpose; anything else is reported as unexpected. */
const EXPECTED_CODES = new Set(['ACQUIRE_TIMEOUT', 'LEASE_REVOKED', 'LEASE_TIMEOUT']);
const WORKLOAD_ERROR = 'workload: rollback on purpose';

export interface Workload {
  /** Scrape target `127.0.0.1:<port>`. */
  readonly target: string;
  readonly poolName: string;
  readonly registry: Registry;
  /** Errors the workload did not expect (should stay empty). */
  readonly unexpected: unknown[];
  /** How many times each expected failure happened (by error code). */
  readonly provoked: Map<string, number>;
  /** Leak warnings the pool logged. */
  readonly warnings: unknown[];
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startWorkload(): Promise<Workload> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry }); // nodejs_eventloop_lag_p99_seconds for the Node.js panel
  const warnings: unknown[] = [];
  const unexpected: unknown[] = [];
  const provoked = new Map<string, number>();

  // The pool is the one host of a cluster (createCluster), named WORKLOAD_POOL (poolName), so the
  // cluster panels (host up, replica lag, reads by reason, primary changes) have data for this pool
  // too. connectDelayMs: connections spend a moment in pending_create, as real ones do.
  const base = fakeAdapter({ connectDelayMs: 2, recordStatements: false });
  const primary: SessionRole = { standby: false, readOnly: false, lagMs: 0 };
  const cluster = createCluster<FakeConnection>({
    name: 'dashboard_cluster',
    hosts: [{ name: 'primary', poolName: WORKLOAD_POOL, adapter: { ...base, sessionRole: async () => primary } }],
    pool: { max: 4, acquireTimeoutMs: 300, leakDetectionMs: 100, leaseTimeoutMs: 400, maxUses: 25 },
    metrics: { registry },
    logger: { warn: (obj: unknown) => warnings.push(obj), error: (obj: unknown) => warnings.push(obj) },
  });
  await cluster.ready();
  const pool = cluster.pool('primary');

  const classify = (err: unknown): void => {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && EXPECTED_CODES.has(code)) {
      provoked.set(code, (provoked.get(code) ?? 0) + 1);
    } else if (err instanceof Error && err.message === WORKLOAD_ERROR) {
      provoked.set('ROLLBACK', (provoked.get('ROLLBACK') ?? 0) + 1);
    } else if (err instanceof FakeError && err.fatal) {
      provoked.set('FATAL', (provoked.get('FATAL') ?? 0) + 1);
    } else {
      unexpected.push(err);
    }
  };

  let running = true;
  const loop = (everyMs: number, body: (i: number) => Promise<unknown>): Promise<void> =>
    (async () => {
      for (let i = 0; running; i++) {
        await body(i).catch(classify);
        await sleep(everyMs);
      }
    })();

  const loops: Array<Promise<void>> = [
    // Web traffic: more workers than connections, short leases -> waits, pending callers, saturation.
    ...[0, 1, 2, 3, 4].map(() =>
      loop(5, () =>
        pool.withLease(async (conn) => {
          await conn.query('SELECT 1');
          await sleep(10 + Math.random() * 40);
        }),
      ),
    ),
    // Transactions: commits, and every third one throws -> rollback.
    loop(20, (i) =>
      pool.withTx(async (conn) => {
        await conn.query('INSERT INTO t VALUES (1)');
        await sleep(5);
        if (i % 3 === 2) throw new Error(WORKLOAD_ERROR);
      }),
    ),
    // A serialization failure, retried once (transactions outcome retry).
    loop(500, () => {
      let attempt = 0;
      return pool.withTx(
        async (conn) => {
          attempt += 1;
          if (attempt === 1) await conn.query('RETRYABLE');
        },
        { retries: 2 },
      );
    }),
    // The server drops a connection mid-query: broken connection destroyed and replaced.
    loop(1_000, () => pool.withLease(async (conn) => conn.query('FATAL'))),
    // A raw BEGIN left open: the release path rolls it back (recoveries kind rollback_on_release).
    loop(300, () => pool.withLease(async (conn) => conn.query('BEGIN'))),
    // A lease held past leakDetectionMs, then returned: leak detected (and "returned after").
    loop(400, async () => {
      const lease = await pool.acquire();
      await sleep(150);
      await lease.release();
    }),
    // A lease held past leakDetectionMs (reported), then past leaseTimeoutMs: the pool revokes and
    // reclaims it (kind leak_reclaimed).
    loop(700, async () => {
      const lease = await pool.acquire();
      await sleep(450);
      try {
        await lease.conn.query('SELECT 1'); // revoked by now: throws LEASE_REVOKED
      } finally {
        await lease.release();
      }
    }),
    // A scoped lease past its own deadline (withLease timeoutMs, shorter than leakDetectionMs):
    // revoked, LeaseTimeoutError, counted as kind deadline and never alerting as a leak.
    loop(600, () => pool.withLease(() => sleep(250), { timeoutMs: 60 })),
    // Read-only transactions through the cluster: no replica, so they go to the primary (reason no_replica).
    loop(50, () => cluster.withTx(async (conn) => conn.query('SELECT 1'), { readOnly: true })),
    // An impatient caller: times out while the pool is saturated.
    loop(250, async () => {
      const lease = await pool.acquire({ timeoutMs: 1 });
      await lease.release();
    }),
  ];

  const server = await serveRegistry(registry);
  return {
    target: server.target,
    poolName: WORKLOAD_POOL,
    registry,
    unexpected,
    provoked,
    warnings,
    async stop() {
      running = false;
      await Promise.all(loops);
      await cluster.close({ timeoutMs: 2_000 });
      await server.close();
    },
  };
}
