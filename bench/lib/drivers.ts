/**
 * What the overload, spike and outage scenarios need from each driver, behind one shape: a
 * leasepool pool over a counted adapter, and the driver's own pool checked out, queried and
 * released the way its documentation writes it. The counting wraps the adapter object (spread,
 * `connect` wrapped), so src/ and adapters/ stay untouched.
 */
import { Client, Pool as PgPool } from 'pg';
import { createPool as createMysqlPool } from 'mysql2/promise';
import type { Adapter } from '../../src/adapter';
import type { PoolOptions } from '../../src/options';
import { leasepool, mysqlAdapterModule, pgAdapterModule } from './subject';

/** Connect attempts of one pool: how many started, succeeded, and the most in flight at once. */
export class ConnectCounter {
  started = 0;
  opened = 0;
  failed = 0;
  inFlight = 0;
  maxInFlight = 0;

  begin(): void {
    this.started++;
    this.inFlight++;
    if (this.inFlight > this.maxInFlight) this.maxInFlight = this.inFlight;
  }

  end(ok: boolean): void {
    this.inFlight--;
    if (ok) this.opened++;
    else this.failed++;
  }

  /** Count the attempts of `connect`, a function returning a promise. */
  wrap<A extends unknown[], R>(connect: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return (...args: A) => {
      this.begin();
      return connect(...args).then(
        (conn) => {
          this.end(true);
          return conn;
        },
        (err: unknown) => {
          this.end(false);
          throw err;
        },
      );
    };
  }
}

/** The adapter with its `connect` counted (everything else as it is). */
export function countedAdapter<C extends object>(adapter: Adapter<C>, counter: ConnectCounter): Adapter<C> {
  return { ...adapter, connect: counter.wrap(adapter.connect.bind(adapter)) };
}

/** A connection checked out of the driver's own pool. */
export interface DriverConn {
  query(sql: string): Promise<unknown>;
  /** Give it back; `broken` says the last statement failed (pg: `release(true)` destroys it). */
  release(broken: boolean): void;
}

/** The driver's own pool, as the scenarios use it. */
export interface DriverPool {
  checkout(): Promise<DriverConn>;
  end(): Promise<void>;
}

export interface Endpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
}

/** One driver, for the scenarios of this folder. */
export interface DriverKit {
  readonly db: 'pg' | 'mysql';
  /** The driver pool's name in tables: `pg.Pool`, `mysql2 pool`. */
  readonly driverName: string;
  readonly sleepSql: string;
  readonly begin: string;
  /** A leasepool pool on `url` whose connect attempts go to `counter`. */
  leasepool(url: string, options: PoolOptions, counter: ConnectCounter): LeasePool;
  /** The driver's pool (max `max`; `queueLimit`: mysql2's bound on waiting callers, if any). */
  driverPool(url: string, max: number, counter: ConnectCounter, queueLimit?: number): DriverPool;
  /** Whether {@link driverPool} can bound its waiting callers. */
  readonly hasQueueLimit: boolean;
  url(e: Endpoint): string;
}

/** What the scenarios use of a leasepool pool (whatever its connection type). */
export interface LeasePool {
  withLease<R>(fn: (conn: Queryable) => R | PromiseLike<R>): Promise<R>;
  withTx<R>(fn: (conn: Queryable) => R | PromiseLike<R>): Promise<R>;
  stats(): { readonly size: number; readonly idle: number; readonly active: number; readonly pending: number };
  close(): Promise<unknown>;
}

export interface Queryable {
  query(sql: string): Promise<unknown>;
}

export const pgKit: DriverKit = {
  db: 'pg',
  driverName: 'pg.Pool',
  sleepSql: 'SELECT pg_sleep(0.002)',
  begin: 'BEGIN',
  hasQueueLimit: false,
  leasepool(url, options, counter) {
    return leasepool().createPool(countedAdapter(pgAdapterModule().pgAdapter(url), counter), options) as unknown as LeasePool;
  },
  driverPool(url, max, counter) {
    // pg.Pool makes its clients with `new this.Client(options)`: a subclass counts their connects.
    class CountedClient extends Client {
      constructor(config?: ConstructorParameters<typeof Client>[0]) {
        super(config);
        // A checked-out client whose server goes away emits 'error'; pg.Pool listens only on idle
        // ones, so without this the outage scenario's process dies of an unhandled 'error' event
        // (pg #2439). Careful applications add this listener; the bench measures that case.
        this.on('error', () => undefined);
        // pg.Pool calls connect(callback); count the attempt and its outcome around that.
        const connect = this.connect.bind(this) as (callback: (err: Error | null) => void) => void;
        (this as unknown as { connect: (callback: (err: Error | null) => void) => void }).connect = (callback) => {
          counter.begin();
          connect((err) => {
            counter.end(!err);
            callback(err);
          });
        };
      }
    }
    const pool = new PgPool({ connectionString: url, max, idleTimeoutMillis: 30_000, Client: CountedClient });
    pool.on('error', () => undefined);
    return {
      async checkout() {
        const client = await pool.connect();
        return { query: (sql) => client.query(sql), release: (broken) => client.release(broken) };
      },
      end: () => pool.end(),
    };
  },
  url: (e) => `postgres://${e.user}@${e.host}:${e.port}/${e.database}`,
};

export const mysqlKit: DriverKit = {
  db: 'mysql',
  driverName: 'mysql2 pool',
  sleepSql: 'SELECT SLEEP(0.002)',
  begin: 'START TRANSACTION',
  hasQueueLimit: true,
  leasepool(url, options, counter) {
    return leasepool().createPool(countedAdapter(mysqlAdapterModule().mysqlAdapter(url), counter), options) as unknown as LeasePool;
  },
  driverPool(url, max, counter, queueLimit) {
    const pool = createMysqlPool({ uri: url, connectionLimit: max, ...(queueLimit === undefined ? {} : { queueLimit }) });
    // mysql2's pool has no connect hook: a new connection is counted when the pool announces it
    // (attempts in flight are not seen; the pool opens at most connectionLimit at once by construction).
    pool.pool.on('connection', () => {
      counter.started++;
      counter.opened++;
    });
    pool.on('error' as 'connection', () => undefined);
    return {
      async checkout() {
        const conn = await pool.getConnection();
        return { query: (sql) => conn.query(sql), release: () => conn.release() };
      },
      end: () => pool.end(),
    };
  },
  url: (e) => `mysql://${e.user}@${e.host}:${e.port}/${e.database}`,
};
