/**
 * PostgreSQL scenarios (node-postgres), in the shapes of lib/db.ts: `pg-select` (SELECT 1 at 1,
 * 16, 64 callers over max 10), `pg-tx` (BEGIN; UPDATE one random row of 1 000; COMMIT at 16
 * callers) and `pg-facade` (`pool.query('SELECT 1')` through leasepool's drop-in `Pool` from
 * `leasepool/adapters/pg` vs `pg.Pool` itself, same options, at 1, 16, 64 callers); `pg-inspector`
 * (SELECT 1 at 16 callers without the lease inspector, with it served and nobody connected, and
 * with one page open).
 *
 * Peer settings: `pg.Pool` hands out its most recently used idle client (LIFO, `_idle.pop()`) and
 * cannot be told otherwise; leasepool rotates (generic-pool's default `fifo: true`, see
 * src/pool.ts). `pg.Pool` gets `idleTimeoutMillis: 30 000` (leasepool's default `idleTimeoutMs`;
 * pg's own 10 s default could close connections while the other variants take their turn); the
 * facade gets the very same options. The leasepool variants use the defaults (leak detection on)
 * unless named `-noleak`.
 */
import { Client, Pool as PgPool } from 'pg';
import { redact } from '../../src/redact';
import type { VariantInstance } from '../lib/harness';
import { ACCOUNTS, ACCOUNTS_TABLE, DB_MAX, facadeScenario, fmt, inspectorScenario, randomAccount, selectScenario, tracingScenario, txScenario, type AccountsTable } from '../lib/db';
import { benchTracing, inRequest } from '../lib/tracing';
import type { Service } from '../lib/scenario';
import { leasepool, pgAdapterModule } from '../lib/subject';

const PG_URL = process.env['PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const UPDATE = `UPDATE ${ACCOUNTS_TABLE} SET balance = balance + 1 WHERE id = $1`;
/** What both pg.Pool and the facade are built with. */
const POOL_CONFIG = { connectionString: PG_URL, max: DB_MAX, idleTimeoutMillis: 30_000 } as const;

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

/** A fresh accounts table for the transaction scenarios. */
async function createAccounts(): Promise<AccountsTable> {
  const admin = new Client({ connectionString: PG_URL });
  admin.on('error', () => undefined);
  await admin.connect();
  const dispose = async (): Promise<void> => {
    await admin.query(`DROP TABLE IF EXISTS ${ACCOUNTS_TABLE}`).catch(() => undefined);
    await admin.end();
  };
  try {
    await admin.query(`DROP TABLE IF EXISTS ${ACCOUNTS_TABLE}`);
    await admin.query(`CREATE TABLE ${ACCOUNTS_TABLE} (id int PRIMARY KEY, balance bigint NOT NULL DEFAULT 0)`);
    await admin.query(`INSERT INTO ${ACCOUNTS_TABLE} (id) SELECT generate_series(1, ${ACCOUNTS})`);
  } catch (err) {
    await dispose();
    throw err;
  }
  return {
    async total() {
      const { rows } = await admin.query<{ total: string }>(`SELECT coalesce(sum(balance), 0)::text AS total FROM ${ACCOUNTS_TABLE}`);
      return Number(rows[0]?.total);
    },
    dispose,
  };
}

const leasepoolPool = (leakDetectionMs?: number) =>
  leasepool().createPool(pgAdapterModule().pgAdapter(PG_URL), leakDetectionMs === undefined ? { max: DB_MAX } : { max: DB_MAX, leakDetectionMs });
const tracedPool = (traced: boolean) =>
  leasepool().createPool(pgAdapterModule().pgAdapter(PG_URL), traced ? { max: DB_MAX, openTelemetry: { tracerProvider: benchTracing(), metrics: false } } : { max: DB_MAX });
const pgPool = (): PgPool => {
  const pool = new PgPool(POOL_CONFIG);
  pool.on('error', () => undefined);
  return pool;
};
const pgQuery = (): VariantInstance => {
  const pool = pgPool();
  return { op: () => pool.query('SELECT 1'), close: () => pool.end() };
};

export const pgSelect = selectScenario({
  name: 'pg-select',
  title: `SELECT 1 on PostgreSQL, max ${DB_MAX}, 1/16/64 callers`,
  service: pgService,
  leasepool(leakDetectionMs) {
    const pool = leasepoolPool(leakDetectionMs);
    return { op: () => pool.withLease((conn) => conn.query('SELECT 1')), close: async () => void (await pool.close()) };
  },
  peer: {
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
});

export const pgInspector = inspectorScenario({
  name: 'pg-inspector',
  title: `SELECT 1 in withLease on PostgreSQL, max ${DB_MAX}, 16 callers: without the lease inspector, with it served (nobody connected), with one page open`,
  service: pgService,
  leasepool(inspector) {
    const pool = leasepoolPool();
    const op = (): Promise<unknown> => pool.withLease((conn) => conn.query('SELECT 1'));
    if (inspector === 'off') return { op, close: async () => void (await pool.close()) };
    const served = leasepool().serveInspector([pool], { port: 0 });
    let poller: NodeJS.Timeout | undefined;
    if (inspector === 'page') {
      // One page open: the page's default poll, one `leases.json` a second.
      void served.then((server) => {
        poller = setInterval(() => void fetch(server.jsonUrl).then((r) => r.arrayBuffer()).catch(() => undefined), 1_000);
      });
    }
    return {
      op,
      async close() {
        if (poller !== undefined) clearInterval(poller);
        await (await served).close();
        await pool.close();
      },
    };
  },
});

export const pgTx = txScenario({
  name: 'pg-tx',
  title: `BEGIN; UPDATE 1 random row of ${fmt(ACCOUNTS)}; COMMIT on PostgreSQL, max ${DB_MAX}, 16 callers`,
  service: pgService,
  createAccounts,
  leasepool(committed) {
    const pool = leasepoolPool();
    return {
      async op() {
        await pool.withTx((conn) => conn.query(UPDATE, [randomAccount()]));
        committed();
      },
      close: async () => void (await pool.close()),
    };
  },
  peer: {
    name: 'pg.Pool tx',
    open(committed) {
      const pool = pgPool();
      return {
        async op() {
          const client = await pool.connect();
          try {
            await client.query('BEGIN');
            await client.query(UPDATE, [randomAccount()]);
            await client.query('COMMIT');
          } catch (err) {
            await client.query('ROLLBACK').catch(() => undefined);
            throw err;
          } finally {
            client.release();
          }
          committed();
        },
        close: () => pool.end(),
      };
    },
  },
});

export const pgFacade = facadeScenario({
  name: 'pg-facade',
  title: `pool.query('SELECT 1') through leasepool's pg.Pool facade vs pg.Pool, same options, max ${DB_MAX}, 1/16/64 callers`,
  service: pgService,
  facade: {
    name: 'facade pool.query',
    open() {
      const pool = new (pgAdapterModule().Pool)(POOL_CONFIG);
      pool.on('error', () => undefined);
      return { op: () => pool.query('SELECT 1'), close: () => pool.end() };
    },
  },
  driver: { name: 'pg.Pool.query', open: pgQuery },
});

export const pgTracing = tracingScenario({
  name: 'pg-tracing',
  title: `OpenTelemetry tracing on (SDK tracer, batch processor, exporter to nowhere) vs off, each op inside a request's span: SELECT 1 in withLease and the withTx UPDATE on PostgreSQL, max ${DB_MAX}, 16 callers`,
  service: pgService,
  createAccounts,
  select(traced) {
    const pool = tracedPool(traced);
    const select = (): Promise<unknown> => pool.withLease((conn) => conn.query('SELECT 1'));
    return { op: () => inRequest(select), close: async () => void (await pool.close()) };
  },
  tx(traced, committed) {
    const pool = tracedPool(traced);
    const transfer = async (): Promise<void> => {
      await pool.withTx((conn) => conn.query(UPDATE, [randomAccount()]));
      committed();
    };
    return {
      op: () => inRequest(transfer),
      close: async () => void (await pool.close()),
    };
  },
});
