/**
 * Child of the `instructions` scenario, run under `valgrind --tool=callgrind`: one variant, a
 * warm-up of `warmup` ops, then `ops` ops, then exit. The counted ops lie between two calls of
 * node builtins nothing else calls (`os.loadavg()`, `os.uptime()`), on which callgrind dumps its
 * counters: the dump between them holds the counted ops alone.
 *
 *   node instructions-child.js <variant> <warmup> <ops> [pgUrl] [mysqlUrl] [callers]
 *
 * With `callers` > 1 the ops are run by that many concurrent callers (each `ops / callers` in a
 * row), so the count includes what a pool does when callers queue for a connection.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import * as os from 'node:os';
import type * as GenericPool from 'generic-pool';
import type * as MysqlPromise from 'mysql2/promise';
import type * as Pg from 'pg';
import { fakeAdapterModule, leasepool, mysqlAdapterModule, pgAdapterModule } from './subject';

interface Instance {
  op(): Promise<unknown>;
  close(): Promise<unknown>;
}

const MAX = 10;
// Each variant loads only its own driver: loading the others would only lengthen every run under
// valgrind (they cancel out of the difference anyway).
/* eslint-disable @typescript-eslint/no-require-imports */
const pg = (): typeof Pg => require('pg') as typeof Pg;
const mysql = (): typeof MysqlPromise => require('mysql2/promise') as typeof MysqlPromise;
const gpool = (): typeof GenericPool => require('generic-pool') as typeof GenericPool;
/**
 * Leak detection on (its default `leakDetectionMs`), stack sampling off: sampling is per wall-clock
 * second, and valgrind slows the process tens of times, so a sampled share of ops would grow with it.
 */
const LEASEPOOL_OPTIONS = { max: MAX, leakStacksPerSecond: 0 } as const;

export const VARIANTS: Record<string, (pgUrl: string, mysqlUrl: string) => Instance> = {
  'pg withLease'(pgUrl) {
    const pool = leasepool().createPool(pgAdapterModule().pgAdapter(pgUrl), LEASEPOOL_OPTIONS);
    return { op: () => pool.withLease((conn) => conn.query('SELECT 1')), close: () => pool.close() };
  },
  'pg withLease inspector'(pgUrl) {
    // The lease inspector served, nobody connected: every statement notes its text and start time.
    const pool = leasepool().createPool(pgAdapterModule().pgAdapter(pgUrl), LEASEPOOL_OPTIONS);
    const served = leasepool().serveInspector([pool], { port: 0 });
    return {
      op: () => pool.withLease((conn) => conn.query('SELECT 1')),
      close: async () => {
        await (await served).close();
        await pool.close();
      },
    };
  },
  'pg.Pool connect'(pgUrl) {
    const pool = new (pg().Pool)({ connectionString: pgUrl, max: MAX, idleTimeoutMillis: 30_000 });
    pool.on('error', () => undefined);
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
  /**
   * pg.Pool in a process where an AsyncLocalStorage holds a store (an application with a request
   * context, OpenTelemetry's context manager, an APM agent): on Node < 22 every promise then pays
   * the async hooks that leasepool's own ambient scope also turns on.
   */
  'pg.Pool connect, ALS on'(pgUrl, mysqlUrl) {
    new AsyncLocalStorage<object>().enterWith({ request: 1 });
    return (VARIANTS['pg.Pool connect'] as (pgUrl: string, mysqlUrl: string) => Instance)(pgUrl, mysqlUrl);
  },
  'pg facade query'(pgUrl) {
    const pool = new (pgAdapterModule().Pool)({ connectionString: pgUrl, max: MAX, idleTimeoutMillis: 30_000, leasepool: { leakStacksPerSecond: 0 } });
    pool.on('error', () => undefined);
    return { op: () => pool.query('SELECT 1'), close: () => pool.end() };
  },
  'pg.Pool query'(pgUrl) {
    const pool = new (pg().Pool)({ connectionString: pgUrl, max: MAX, idleTimeoutMillis: 30_000 });
    pool.on('error', () => undefined);
    return { op: () => pool.query('SELECT 1'), close: () => pool.end() };
  },
  'mysql withLease'(_pgUrl, mysqlUrl) {
    const pool = leasepool().createPool(mysqlAdapterModule().mysqlAdapter(mysqlUrl), LEASEPOOL_OPTIONS);
    return { op: () => pool.withLease((conn) => conn.query('SELECT 1')), close: () => pool.close() };
  },
  'mysql2 getConnection'(_pgUrl, mysqlUrl) {
    const pool = mysql().createPool({ uri: mysqlUrl, connectionLimit: MAX });
    return {
      async op() {
        const conn = await pool.getConnection();
        try {
          await conn.query('SELECT 1');
        } finally {
          conn.release();
        }
      },
      close: () => pool.end(),
    };
  },
  'mysql facade query'(_pgUrl, mysqlUrl) {
    const pool = mysqlAdapterModule().createPool({ uri: mysqlUrl, connectionLimit: MAX, leasepool: { leakStacksPerSecond: 0 } });
    return { op: () => pool.query('SELECT 1'), close: () => pool.end() };
  },
  'mysql2 pool.query'(_pgUrl, mysqlUrl) {
    const pool = mysql().createPool({ uri: mysqlUrl, connectionLimit: MAX });
    return { op: () => pool.query('SELECT 1'), close: () => pool.end() };
  },
  'cycle withLease'() {
    // As the cycle scenario's `withLease` variant: the fake adapter, leak detection off.
    const pool = leasepool().createPool(fakeAdapterModule().fakeAdapter({ recordStatements: false }), { max: MAX, leakDetectionMs: 0 });
    const noop = async (): Promise<void> => {};
    return { op: () => pool.withLease(noop), close: () => pool.close() };
  },
  'cycle generic-pool, ALS on'(pgUrl, mysqlUrl) {
    new AsyncLocalStorage<object>().enterWith({ request: 1 });
    return (VARIANTS['cycle generic-pool'] as (pgUrl: string, mysqlUrl: string) => Instance)(pgUrl, mysqlUrl);
  },
  'cycle generic-pool'() {
    let n = 0;
    const gp = gpool().createPool({ create: async () => ({ id: n++ }), destroy: async () => undefined }, { max: MAX, min: 0, fifo: true });
    return {
      async op() {
        const r = await gp.acquire();
        void gp.release(r);
      },
      async close() {
        await gp.drain();
        await gp.clear();
      },
    };
  },
};

async function main(): Promise<void> {
  const [variant = '', warmup = '0', ops = '0', pgUrl = '', mysqlUrl = '', callers = '1'] = process.argv.slice(2);
  const make = VARIANTS[variant];
  if (make === undefined) throw new Error(`no variant ${JSON.stringify(variant)}`);
  const instance = make(pgUrl, mysqlUrl);
  const concurrency = Math.max(1, Number(callers));
  const run = async (n: number): Promise<void> => {
    const each = Math.ceil(n / concurrency);
    const caller = async (): Promise<void> => {
      for (let i = 0; i < each; i++) await instance.op();
    };
    await Promise.all(Array.from({ length: concurrency }, caller));
  };
  await run(Number(warmup));
  // One more round of exactly what is counted: the first return from a round to this frame, and
  // the next round's first callers, show AsyncLocalStorage's hooks objects they have not seen yet;
  // V8 then deoptimizes and recompiles those hooks, a compile that belongs to no pool's steady state.
  await run(Number(ops));
  // Markers for callgrind (--zero-before / --dump-before on these two node builtins, which none
  // of the code measured calls): counts start from zero here and are written out at the end.
  os.loadavg();
  await run(Number(ops));
  os.uptime();
  await instance.close();
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
