/**
 * PostgreSQL scenarios (node-postgres): `pg-select` (SELECT 1 at 1, 16, 64 callers over max 10)
 * and `pg-tx` (BEGIN; UPDATE one random row of 1 000; COMMIT at 16 callers).
 *
 * Peer settings: `pg.Pool` hands out its most recently used idle client (LIFO, `_idle.pop()`) and
 * cannot be told otherwise; leasepool rotates (generic-pool's default `fifo: true`, see
 * src/pool.ts). `pg.Pool` gets `idleTimeoutMillis: 30 000` (leasepool's default `idleTimeoutMs`;
 * pg's own 10 s default could close connections while the other variants take their turn).
 * The leasepool variants use the defaults (leak detection on) unless named `-noleak`.
 */
import { Client, Pool as PgPool } from 'pg';
import { redact } from '../../src/redact';
import { runThroughput, type Budget, type VariantDef } from '../lib/harness';
import type { Check, Scenario, Service } from '../lib/scenario';
import { leasepool, pgAdapterModule } from '../lib/subject';

const PG_URL = process.env['PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const MAX = 10;
const ACCOUNTS = 1_000;
const TABLE = 'lp_bench_accounts';
const UPDATE = `UPDATE ${TABLE} SET balance = balance + 1 WHERE id = $1`;
const randomId = (): number => 1 + Math.floor(Math.random() * ACCOUNTS);

export const pgService: Service = {
  name: 'PostgreSQL',
  target: redact(PG_URL),
  async probe() {
    const client = new Client({ connectionString: PG_URL, connectionTimeoutMillis: 2_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
    } finally {
      await client.end().catch(() => undefined);
    }
  },
};

const leasepoolPool = (leakDetectionMs?: number) =>
  leasepool().createPool(pgAdapterModule().pgAdapter(PG_URL), leakDetectionMs === undefined ? { max: MAX } : { max: MAX, leakDetectionMs });
const pgPool = (): PgPool => {
  const pool = new PgPool({ connectionString: PG_URL, max: MAX, idleTimeoutMillis: 30_000 });
  pool.on('error', () => undefined);
  return pool;
};

export const pgSelect: Scenario = {
  name: 'pg-select',
  title: `SELECT 1 on PostgreSQL, max ${MAX}, 1/16/64 callers`,
  service: pgService,
  async run(options) {
    const concurrencies = [1, 16, 64] as const;
    const budgets: Budget[] = concurrencies.map((at) => ({
      variant: 'leasepool',
      baseline: 'pg.Pool connect',
      at,
      metric: 'throughput',
      limit: 0.95,
    }));
    budgets.push({ variant: 'leasepool', baseline: 'leasepool-noleak', at: 16, metric: 'throughput', limit: 0.95, note: 'leak detection costs ≤ 5%' });
    const variants: VariantDef[] = [
      {
        name: 'leasepool',
        open() {
          const pool = leasepoolPool();
          return { op: () => pool.withLease((conn) => conn.query('SELECT 1')), close: async () => void (await pool.close()) };
        },
      },
      {
        name: 'leasepool-noleak',
        at: [16],
        open() {
          const pool = leasepoolPool(0);
          return { op: () => pool.withLease((conn) => conn.query('SELECT 1')), close: async () => void (await pool.close()) };
        },
      },
      {
        name: 'pg.Pool connect',
        open() {
          const pool = pgPool();
          return {
            async op() {
              const client = await pool.connect();
              try {
                await client.query('SELECT 1');
              } finally {
                client.release();
              }
            },
            close: () => pool.end(),
          };
        },
      },
      {
        name: 'pg.Pool.query',
        open() {
          const pool = pgPool();
          return { op: () => pool.query('SELECT 1'), close: () => pool.end() };
        },
      },
    ];
    const out = await runThroughput({
      concurrencies,
      variants,
      baseline: 'pg.Pool connect',
      ratioMetric: 'throughput',
      durationMs: 800 * options.timeScale,
      warmupMs: 400 * options.timeScale,
      checkEvery: 1,
      reps: options.reps,
      progress: true,
      budgets,
    });
    return { tables: out.tables, budgets: out.budgets, checks: [], results: out.results };
  },
};

export const pgTx: Scenario = {
  name: 'pg-tx',
  title: `BEGIN; UPDATE 1 random row of ${fmt(ACCOUNTS)}; COMMIT on PostgreSQL, max ${MAX}, 16 callers`,
  service: pgService,
  async run(options) {
    const admin = new Client({ connectionString: PG_URL });
    admin.on('error', () => undefined);
    await admin.connect();
    try {
      await admin.query(`DROP TABLE IF EXISTS ${TABLE}`);
      await admin.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, balance bigint NOT NULL DEFAULT 0)`);
      await admin.query(`INSERT INTO ${TABLE} (id) SELECT generate_series(1, ${ACCOUNTS})`);
      let commits = 0;
      const out = await runThroughput({
        concurrencies: [16],
        baseline: 'pg.Pool tx',
        ratioMetric: 'throughput',
        durationMs: 1_000 * options.timeScale,
        warmupMs: 500 * options.timeScale,
        checkEvery: 1,
        reps: options.reps,
        progress: true,
        budgets: [{ variant: 'leasepool withTx', baseline: 'pg.Pool tx', at: 16, metric: 'throughput', limit: 0.95 }],
        variants: [
          {
            name: 'leasepool withTx',
            open() {
              const pool = leasepoolPool();
              return {
                async op() {
                  await pool.withTx((conn) => conn.query(UPDATE, [randomId()]));
                  commits++;
                },
                close: async () => void (await pool.close()),
              };
            },
          },
          {
            name: 'pg.Pool tx',
            open() {
              const pool = pgPool();
              return {
                async op() {
                  const client = await pool.connect();
                  try {
                    await client.query('BEGIN');
                    await client.query(UPDATE, [randomId()]);
                    await client.query('COMMIT');
                  } catch (err) {
                    await client.query('ROLLBACK').catch(() => undefined);
                    throw err;
                  } finally {
                    client.release();
                  }
                  commits++;
                },
                close: () => pool.end(),
              };
            },
          },
        ],
      });
      const { rows } = await admin.query<{ total: string }>(`SELECT coalesce(sum(balance), 0)::text AS total FROM ${TABLE}`);
      const total = Number(rows[0]?.total);
      const checks: Check[] = [{ label: 'every commit landed once', ok: total === commits, detail: `sum(balance) ${fmt(total)}, commits counted ${fmt(commits)}` }];
      return { tables: out.tables, budgets: out.budgets, checks, results: out.results };
    } finally {
      await admin.query(`DROP TABLE IF EXISTS ${TABLE}`).catch(() => undefined);
      await admin.end();
    }
  },
};

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}
