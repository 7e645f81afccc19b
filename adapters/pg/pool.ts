/**
 * A drop-in replacement for node-postgres' `Pool` (pg-pool 3.x), built on leasepool.
 *
 * ```ts
 * // import { Pool } from 'pg';
 * import { Pool } from 'leasepool/adapters/pg';
 * const pool = new Pool({ connectionString, max: 10, idleTimeoutMillis: 10_000 });
 * ```
 *
 * Same constructor options, methods, callbacks, events and counts as `pg.Pool`; underneath, a
 * leasepool pool: a client released inside a transaction is rolled back before anyone else gets
 * it, leaked clients are reported with the stack that checked them out, an idle client's socket
 * error never crashes the process, `end()` has a deadline, and `pool.withTx()` is there when you
 * want it. The remaining differences from pg.Pool, each with its reason, are in docs/migration-from-pg.md.
 *
 * Re-exported from `leasepool/adapters/pg`; imports only `pg` and leasepool's core.
 */
import { EventEmitter } from 'node:events';
import { Client } from 'pg';
import type { ClientBase, ClientConfig, PoolClient, PoolConfig, QueryArrayConfig, QueryArrayResult, QueryConfig, QueryConfigValues, QueryResult, QueryResultRow } from 'pg';
import type { Adapter, ConnectionEvents } from '../../src/adapter';
import type { PooledConnection } from '../../src/connections';
import { findAmbient } from '../../src/context';
import { noteSentStatement, statementEnded } from '../../src/guard';
import { AcquireTimeoutError, ConfigError, ConnectError, LeaseReleasedError, PoolClosedError } from '../../src/errors';
import type { CallSite, Lease, LeaseRecord } from '../../src/lease';
import { consoleLogger, type Logger } from '../../src/logger';
import type { MetricsOptions } from '../../src/metrics';
import type { OpenTelemetryOptions } from '../../src/telemetry/types';
import { show } from '../../src/options';
import { createPool, type LeaseScopeOptions, type Pool as LeasePool, type PoolStats } from '../../src/pool';
import { redact, redactError } from '../../src/redact';
import { RELEASED_CLEAN, releaseLease } from '../../src/release';
import type { Transaction, TxOptions } from '../../src/transaction';
import { pgAdapter } from './adapter';
import { driverErrorOf } from './errors';

/** pg-pool's own messages, kept word for word: code that matches on them keeps working. */
const MESSAGES = {
  doubleRelease: 'Release called on client which has already been released to the pool.',
  ended: 'Cannot use a pool after calling end on the pool',
  endTwice: 'Called end on pool more than once',
  queueTimeout: 'timeout exceeded when trying to connect',
  connectTimeout: 'Connection terminated due to connection timeout',
  functionQuery: 'Passing a function as the first parameter to pool.query is not supported',
} as const;

/** setTimeout's ceiling: "no connect timeout" (pg's 0) as a deadline that never fires in practice. */
const NO_CONNECT_TIMEOUT_MS = 2_147_483_647;
/**
 * pg's `connectionTimeoutMillis` is both the connect deadline and the longest wait for a client.
 * A caller waiting on its own new connection must get the connect timeout (pg's "Connection
 * terminated due to connection timeout"), so the wait deadline trails the connect deadline a little.
 */
const WAIT_AFTER_CONNECT_TIMEOUT_MS = 25;
const DEFAULT_END_TIMEOUT_MS = 10_000;

/** leasepool's own options, under the `leasepool` key of the pool config. */
export interface PgPoolLeasepoolOptions {
  /** Pool name: the `pool` label of metrics and the prefix of log lines. Default `'default'`. */
  name?: string;
  /** A client held longer than this is reported once (logger warning with the `connect()` stack, event `leak` on `pool.leasepool`). `0` disables. Default 30 000. */
  leakDetectionMs?: number;
  /** Most acquire stacks recorded per second for leak reports (leasepool's `leakStacksPerSecond`). Default 100. */
  leakStacksPerSecond?: number;
  /** A client held longer than this is taken back: its statement cancelled, its transaction rolled back, the connection closed; further use throws `LeaseRevokedError`. Default: never. */
  leaseTimeoutMs?: number | undefined;
  /** `DISCARD ALL` at every release (session state never leaks to the next borrower). Default `false`. */
  resetOnRelease?: boolean;
  /** Prometheus metrics (`leasepool_*`) into this prom-client registry. Default off. */
  metrics?: MetricsOptions | false | undefined;
  /** OpenTelemetry spans and `db.client.connection.*` metrics (leasepool's `openTelemetry`; needs `@opentelemetry/api`). Default off. */
  openTelemetry?: OpenTelemetryOptions | boolean | undefined;
  /** Where warnings go (leaks, background connection errors nobody listens to): `{ warn, error, info?, debug? }`. Default: console. */
  logger?: Logger;
  /** Most callers waiting for a client; one more fails at once (`PoolQueueFullError`). Default `Infinity`. */
  maxWaiting?: number;
  /** `end()` waits this long for checked-out clients, then takes them back (rolled back, closed). Default 10 000. */
  endTimeoutMs?: number;
  /**
   * A `client.query()` on a client that sits released in the pool: `'warn'` (default) logs a
   * warning with the stack of the use and of the `release()` (when leak detection recorded it) and
   * counts it in `pool.useAfterReleaseCount`, then runs the query as pg.Pool would; `'throw'`
   * throws `LeaseReleasedError` instead.
   */
  useAfterRelease?: 'warn' | 'throw';
}

/** The constructor options of `pg.Pool` (every `ClientConfig` field passes through to each client), plus `leasepool`. */
export interface PgPoolConfig extends Omit<PoolConfig, 'Client' | 'onConnect'> {
  /** Client class for each connection (default `pg.Client`); must behave like `pg.Client`. */
  Client?: (new (config?: ClientConfig) => ClientBase) | undefined;
  /** Called with each new client after it connected, before first use; a rejection fails that `connect()` and closes the client. */
  onConnect?: ((client: ClientBase) => void | Promise<void>) | undefined;
  /** Old name of `max`, still read by pg-pool. */
  poolSize?: number | undefined;
  /** leasepool's own options. */
  leasepool?: PgPoolLeasepoolOptions | undefined;
}

/** The pg.Pool events and what their listeners receive. */
export interface PgPoolEvents {
  /** A new client connected (after `onConnect`), before it is first used. The client itself, as every event carries it. */
  connect: (client: PoolClient) => void;
  /** A client was checked out (`connect()`, `query()`). The client the caller gets. */
  acquire: (client: PoolClient) => void;
  /** A client was given back; `err` is what `release(err)` got (for `query()`: the query's error, or null). */
  release: (err: Error | boolean | null | undefined, client: PoolClient) => void;
  /** A client was closed. */
  remove: (client: PoolClient) => void;
  /** An idle client failed in the background (e.g. the server ended its session); it is already removed. */
  error: (err: Error, client: PoolClient) => void;
}

/** What `pool.options` shows: pg-pool's options with its defaults applied (the password is not enumerable). */
export interface PgPoolOptions extends PgPoolConfig {
  max: number;
  min: number;
  maxUses: number;
  allowExitOnIdle: boolean;
  maxLifetimeSeconds: number;
  idleTimeoutMillis: number | null;
}

type QueryCallback<T> = (err: Error, result: T) => void;
type ConnectCallback = (err: Error | undefined, client: PoolClient | undefined, done: (release?: Error | boolean) => void) => void;

/**
 * A listener of a pg.Pool event, typed exactly as `@types/pg` types it (so the facade is assignable
 * to `pg.Pool`); {@link PgPoolEvents} documents what each event really carries.
 */
export type PgPoolListener<K extends keyof PgPoolEvents> = K extends 'error' | 'release'
  ? (err: Error, client: PoolClient) => void
  : (client: PoolClient) => void;

/** Typed listeners for the pg.Pool events (merged into the class below). */
export interface Pool {
  on<K extends keyof PgPoolEvents>(event: K, listener: PgPoolListener<K>): this;
  once<K extends keyof PgPoolEvents>(event: K, listener: PgPoolListener<K>): this;
  off<K extends keyof PgPoolEvents>(event: K, listener: PgPoolListener<K>): this;
  addListener<K extends keyof PgPoolEvents>(event: K, listener: PgPoolListener<K>): this;
  removeListener<K extends keyof PgPoolEvents>(event: K, listener: PgPoolListener<K>): this;
}

/** What the facade knows of one open client, kept on the client itself (one property read per use). */
interface ClientMeta {
  /** `'setup'`: connecting, `onConnect`/`verify` running; `'idle'`: in the pool; `'leased'`: checked out; `'closed'`. */
  state: 'setup' | 'idle' | 'leased' | 'closed';
  /** The core's record of the connection, known from its first checkout. */
  pooled: PooledConnection<Client> | undefined;
  /** pg's own `query` of this client (the facade puts a use-after-release check in front of it). */
  query: QueryFn;
  /** pg-pool's idle timer, restarted at each release: the client is closed when it fires while idle (and the pool is above `min`). */
  idleTimer: NodeJS.Timeout | undefined;
  /** pg-pool's lifetime timer. */
  lifetimeTimer: NodeJS.Timeout | undefined;
  /** Past `maxLifetimeSeconds`: closed at its next release (counted in `expiredCount` until then). */
  expired: boolean;
  /** Where the last `release()` was called, when leak detection recorded it (the use-after-release warning shows it). */
  releasedAt: CallSite | undefined;
  /** The lease number of the last checkout (named in use-after-release reports). */
  leaseId: number;
}

type QueryFn = (this: Client, ...args: unknown[]) => unknown;
const META = Symbol('leasepool.pg.client');
type Tracked = Client & { [META]?: ClientMeta; release?: unknown; _queryable?: boolean; _ending?: boolean };

/** Errors of the facade's own connect steps (`verify`) behind the `ConnectError` the core reports. */
const HOOK_ERRORS = new WeakMap<object, unknown>();

/**
 * node-postgres' `Pool`, on leasepool. See the module documentation; `pool.withTx()`,
 * `pool.withLease()` and `pool.leasepool` (stats, active leases, leak events) come on top.
 *
 * Like pg-pool, `connect()` hands out the pg client itself (the same object each time the same
 * connection is checked out), with a `release` function on it; events, counts and errors are
 * pg-pool's.
 */
export class Pool extends EventEmitter {
  /** The options with pg-pool's defaults applied (`max`, `min`, `idleTimeoutMillis`, …). */
  readonly options: PgPoolOptions;
  /** The client class in use. */
  readonly Client: new (config?: ClientConfig) => ClientBase;
  /** True once `end()` was called. */
  ending = false;
  /** True once `end()` has finished. */
  ended = false;

  readonly #core: LeasePool<Client>;
  readonly #logger: Logger;
  readonly #log: (...messages: unknown[]) => void;
  readonly #acquireTimeoutMs: number;
  /** The scope options of every `pool.query()`. */
  readonly #queryScope: LeaseScopeOptions;
  readonly #endTimeoutMs: number;
  readonly #lifetimeMs: number;
  readonly #idleTimeoutMs: number;
  readonly #min: number;
  readonly #maxUses: number;
  readonly #allowExitOnIdle: boolean;
  readonly #throwOnUseAfterRelease: boolean;
  /** Open clients (pg-pool's `_clients`, minus those still connecting). */
  readonly #live = new Map<Client, ClientMeta>();
  /** Connects under way: pg-pool counts a client from the moment it starts connecting. */
  #connecting = 0;
  /** `connect()`/`query()` calls still waiting for their client: `end()` lets them finish. */
  #acquiring = 0;
  #onAcquiresDone: (() => void) | undefined;
  #useAfterRelease = 0;
  /** Abort reasons of connects that hit `connectionTimeoutMillis`. */
  readonly #timeouts = new WeakSet<object>();

  constructor(config?: PgPoolConfig, ClientClass?: PgPoolConfig['Client']) {
    super();
    if (config !== undefined && config !== null && typeof config !== 'object') {
      throw new ConfigError([{ field: 'config', problem: `must be a pg PoolConfig object (got ${show(config)})` }]);
    }
    const input: PgPoolConfig = config ?? {};
    const { leasepool: lp = {}, ...pgConfig } = input;
    if (pgConfig.Client === undefined && ClientClass !== undefined) pgConfig.Client = ClientClass;
    const resolved = resolvePgOptions(pgConfig, lp);

    this.options = hideSecrets({ ...pgConfig, ...resolved.shown });
    this.Client = pgConfig.Client ?? Client;
    this.#log = typeof pgConfig.log === 'function' ? pgConfig.log : noop;
    this.#acquireTimeoutMs = resolved.acquireTimeoutMs;
    this.#queryScope = { acquireTimeoutMs: resolved.acquireTimeoutMs };
    this.#endTimeoutMs = resolved.endTimeoutMs;
    this.#lifetimeMs = resolved.lifetimeMs;
    this.#idleTimeoutMs = resolved.idleTimeoutMs;
    this.#min = resolved.min;
    this.#maxUses = resolved.maxUses;
    this.#allowExitOnIdle = resolved.allowExitOnIdle;
    this.#throwOnUseAfterRelease = lp.useAfterRelease === 'throw';
    const name = lp.name ?? 'default';
    this.#logger = lp.logger ?? withDebug(consoleLogger(name), this.#log);

    // What each client gets: the pg config as pg-pool passes it, minus what the pool enforces
    // itself (one connect deadline, no second timer racing it) and the pool-only functions.
    const clientConfig: Record<string, unknown> = { ...pgConfig };
    for (const key of POOL_ONLY_KEYS) delete clientConfig[key];
    const base = pgAdapter(clientConfig as ClientConfig, {
      Client: pgConfig.Client as unknown as (new (config: ClientConfig) => Client) | undefined,
      onConnect: pgConfig.onConnect as ((client: Client) => void | Promise<void>) | undefined,
      allowExitOnIdle: resolved.allowExitOnIdle,
    });
    const verify = pgConfig.verify;
    const adapter: Adapter<Client> = {
      ...base,
      lifecycleMethods: { ...base.lifecycleMethods, doubleReleaseMessage: MESSAGES.doubleRelease },
      connect: (signal, events) => this.#connect(base, signal, events, verify),
      close: (client) => this.#close(base, client),
      // The pool's own statements (rollback at release, validation, reset) are not uses of a released client.
      exec: (client, sql) => queryOf(client).call(client, sql) as Promise<unknown>,
      validate: async (client) => {
        await queryOf(client).call(client, 'SELECT 1');
      },
      reset: async (client) => {
        await queryOf(client).call(client, 'DISCARD ALL');
      },
      onLease: (client) => {
        const meta = (client as Tracked)[META];
        // The idle timer stays armed: when it fires, a client in use is left alone (see #idle).
        if (meta !== undefined) meta.state = 'leased';
        base.onLease?.(client);
      },
      onIdle: (client) => {
        const meta = (client as Tracked)[META];
        if (meta !== undefined) this.#idle(meta, client);
        base.onIdle?.(client);
      },
    };
    this.#core = createPool(adapter, {
      name,
      max: resolved.max,
      // pg-pool opens no connection ahead of use: its `min` only keeps idle clients from timing out
      // (the idle timers below). Idle and lifetime timers are pg-pool's, per client, here.
      min: 0,
      acquireTimeoutMs: resolved.acquireTimeoutMs,
      connectTimeoutMs: resolved.connectTimeoutMs,
      idleTimeoutMs: Infinity,
      maxLifetimeMs: Infinity,
      maxUses: resolved.maxUses,
      connectFailure: 'one',
      ...(lp.leakDetectionMs !== undefined ? { leakDetectionMs: lp.leakDetectionMs } : {}),
      ...(lp.leakStacksPerSecond !== undefined ? { leakStacksPerSecond: lp.leakStacksPerSecond } : {}),
      ...(lp.leaseTimeoutMs !== undefined ? { leaseTimeoutMs: lp.leaseTimeoutMs } : {}),
      ...(lp.resetOnRelease !== undefined ? { resetOnRelease: lp.resetOnRelease } : {}),
      ...(lp.maxWaiting !== undefined ? { maxWaiting: lp.maxWaiting } : {}),
      metrics: lp.metrics ?? false,
      logger: this.#logger,
      ...(lp.openTelemetry !== undefined ? { openTelemetry: lp.openTelemetry } : {}),
    });
    // Background connection errors are reported by this facade, with pg's (err, client) shape
    // (see #clientError); the core must not log them a second time. Failed connects reach the
    // caller they were for (pg-pool does not log them either).
    this.#core.on('error', noop);
  }

  // ------------------------------------------------------------------ counts

  /** Open clients (idle + checked out + connecting), as pg-pool counts them. */
  get totalCount(): number {
    return this.#live.size + this.#connecting;
  }

  /** Clients idle in the pool. */
  get idleCount(): number {
    return this.#core.stats().idle;
  }

  /** Callers waiting for a client to come back (not those waiting for their own new connection, as in pg-pool). */
  get waitingCount(): number {
    return Math.max(0, this.#core.stats().pending - this.#connecting);
  }

  /** Open clients past `maxLifetimeSeconds`, closed at their next release (or at once if idle). */
  get expiredCount(): number {
    if (this.#lifetimeMs === Infinity) return 0;
    let expired = 0;
    for (const meta of this.#live.values()) if (meta.expired) expired++;
    return expired;
  }

  /**
   * pg-pool's private list of open clients, read by some code (and by pg-pool's own tests).
   * A fresh array each time: changing it changes nothing.
   */
  get _clients(): Client[] {
    return [...this.#live.keys()];
  }

  /** How many times a client was used (`query()`) while it sat released in the pool (see `leasepool.useAfterRelease`). */
  get useAfterReleaseCount(): number {
    return this.#useAfterRelease;
  }

  /** leasepool's counts: `{ size, idle, active, pending, max, min, closed }`. */
  stats(): PoolStats {
    return this.#core.stats();
  }

  /** The leasepool pool underneath: `stats()`, `activeLeases()`, `on('leak' | 'reclaim', …)`. */
  get leasepool(): LeasePool<Client> {
    return this.#core;
  }

  // ------------------------------------------------------------------ pg API

  /**
   * Check out a client; give it back with `client.release()` (`release(err)` or `release(true)`
   * closes it instead). A client released inside a transaction is rolled back first.
   */
  connect(): Promise<PoolClient>;
  connect(callback: ConnectCallback): void;
  connect(callback?: ConnectCallback): Promise<PoolClient> | void {
    const checkedOut = this.#checkOut(this.#core.captureAcquireSite(this.connect));
    if (callback === undefined) return checkedOut;
    checkedOut.then(
      (client) => process.nextTick(callback, undefined, client, client.release),
      (err: Error) => process.nextTick(callback, err, undefined, noop),
    );
  }

  /**
   * Run one statement on a client checked out for it (or, inside `pool.withTx()`/`withLease()`,
   * on that scope's client). Promise form, or callback form `(err, result)`.
   */
  query<R extends unknown[] = unknown[], I = unknown[]>(queryConfig: QueryArrayConfig<I>, values?: QueryConfigValues<I>): Promise<QueryArrayResult<R>>;
  query<R extends QueryResultRow = QueryResultRow, I = unknown[]>(queryConfig: QueryConfig<I>): Promise<QueryResult<R>>;
  query<R extends QueryResultRow = QueryResultRow, I = unknown[]>(queryTextOrConfig: string | QueryConfig<I>, values?: QueryConfigValues<I>): Promise<QueryResult<R>>;
  query<R extends unknown[] = unknown[], I = unknown[]>(queryConfig: QueryArrayConfig<I>, callback: QueryCallback<QueryArrayResult<R>>): void;
  query<R extends QueryResultRow = QueryResultRow, I = unknown[]>(queryTextOrConfig: string | QueryConfig<I>, callback: QueryCallback<QueryResult<R>>): void;
  query<R extends QueryResultRow = QueryResultRow, I = unknown[]>(queryText: string, values: QueryConfigValues<I>, callback: QueryCallback<QueryResult<R>>): void;
  query(text: unknown, values?: unknown, callback?: unknown): Promise<unknown> | void {
    if (typeof text === 'function') {
      // pg-pool treats the function as the callback and fails it asynchronously.
      const cb = text as (err: Error) => void;
      setImmediate(() => cb(new Error(MESSAGES.functionQuery)));
      return;
    }
    if (typeof values === 'function') {
      callback = values;
      values = undefined;
    }
    if (text !== null && typeof text === 'object' && typeof (text as { submit?: unknown }).submit === 'function') {
      throw new TypeError('pool.query() does not take a Submittable (QueryStream, Cursor): check out a client with pool.connect() and call client.query() on it');
    }
    // The leak report's acquire stack starts at the caller of query(), not in this file.
    const result = this.#query(text, values, this.#core.captureAcquireSite(this.query));
    if (typeof callback !== 'function') return result;
    const cb = callback as (err: unknown, result?: unknown) => void;
    result.then(
      (res) => process.nextTick(cb, undefined, res),
      (err: unknown) => process.nextTick(cb, err),
    );
  }

  /**
   * Close every client and stop the pool. `connect()` and `query()` calls made before `end()` still
   * get their client and finish; checked-out clients are waited for up to
   * `leasepool.endTimeoutMs` (default 10 s), then taken back (rolled back and closed).
   */
  end(): Promise<void>;
  end(callback: () => void): void;
  end(callback?: (err?: Error) => void): Promise<void> | void {
    if (this.ending) {
      const err = new Error(MESSAGES.endTwice);
      if (callback === undefined) return Promise.reject(err);
      process.nextTick(callback, err);
      return;
    }
    this.ending = true;
    this.#log('ending');
    const deadline = performance.now() + this.#endTimeoutMs;
    const ended = this.#acquiresDone(this.#endTimeoutMs)
      .then(() => this.#core.close({ timeoutMs: Math.max(0, Math.round(deadline - performance.now())) }))
      .then(() => {
        this.ended = true;
      });
    if (callback === undefined) return ended;
    ended.then(
      () => process.nextTick(callback),
      (err: Error) => process.nextTick(callback, err),
    );
  }

  // ------------------------------------------------------------------ leasepool API

  /**
   * leasepool's transaction: BEGIN, `fn(client, tx)`, COMMIT; ROLLBACK and rethrow on error;
   * nested calls are savepoints; `pool.query()` inside it runs in the transaction.
   */
  withTx<R>(fn: (client: Client, tx: Transaction<Client>) => R | PromiseLike<R>, options?: TxOptions): Promise<R> {
    return this.#core.withTx(fn, options);
  }

  /** leasepool's scoped lease: `fn(client, lease)`, released however it ends; `pool.query()` inside it uses the same client. */
  withLease<R>(fn: (client: Client, lease: Lease<Client>) => R | PromiseLike<R>, options?: LeaseScopeOptions): Promise<R> {
    return this.#core.withLease(fn, options);
  }

  // ------------------------------------------------------------------ internals

  async #checkOut(site: CallSite | undefined): Promise<PoolClient> {
    if (this.ending) throw new Error(MESSAGES.ended);
    this.#acquiring++;
    let lease: Lease<Client>;
    try {
      lease = await this.#core.acquireLease(this.#acquireTimeoutMs, undefined, site, undefined, false);
    } catch (err) {
      this.#acquired();
      throw this.#pgError(err);
    }
    this.#acquired();
    const record = lease.record;
    const client = record.connection.raw as Tracked;
    const meta = this.#leased(client, record);
    let released = false;
    const release = (err?: Error | boolean): void => {
      if (released) throw new LeaseReleasedError(record.id, MESSAGES.doubleRelease);
      released = true;
      this.#release(client, meta, record, err, release);
    };
    client.release = release;
    this.#emit('acquire', client as PoolClient);
    return client as PoolClient;
  }

  /** A client was checked out on `record` (by `connect()` or `pool.query()`). */
  #leased(client: Tracked, record: LeaseRecord<Client>): ClientMeta {
    let meta = client[META];
    if (meta === undefined) meta = this.#track(client); // a client made before this facade knew it (cannot happen with pg.Client)
    meta.leaseId = record.id;
    if (meta.pooled === undefined) {
      meta.pooled = record.connection;
      if (meta.expired) record.connection.expiresAt = 0;
    }
    return meta;
  }

  /** `client.release(err)`: pg-pool's 'release' event, then the core's release path (rollback, retire, return). */
  #release(client: Tracked, meta: ClientMeta, record: LeaseRecord<Client>, err: Error | boolean | undefined, entry: Function): void {
    this.#emit('release', err as Error, client as PoolClient);
    const conn = record.connection;
    // pg-pool's rule: an error (or true) given to release, a client that cannot be queried or is
    // ending, is closed, not pooled.
    if (err || !client._queryable || client._ending) this.#retire(conn, client, err);
    else if (conn.uses + 1 >= this.#maxUses) this.#log('remove expended client');
    // Within leak detection's stack budget (undefined when it is off): shown if the client is used while released.
    meta.releasedAt = this.#core.captureAcquireSite(entry);
    const releasing = releaseLease(record);
    if (releasing !== RELEASED_CLEAN) releasing.catch(noop);
  }

  /**
   * pg-pool's rule for a client given back with an error (or `true`), or that cannot be queried
   * any more: it is closed at this release, not pooled. Counted as broken only when it is (a
   * client that cannot be queried, a fatal error); a statement's error or `release(true)` retires
   * it as routine recycling (reason `lifetime`), so that failed statements do not read as broken
   * connections in the metrics and alerts.
   */
  #retire(conn: PooledConnection<Client>, client: Tracked, err: unknown): void {
    if (!client._queryable || client._ending) conn.markBroken(err instanceof Error ? err : new Error('released a client that can no longer be queried'));
    else if (err instanceof Error && this.#core.adapter.isFatal(err)) conn.markBroken(err);
    else conn.expiresAt = 0;
  }

  /**
   * `pool.query()`: a scope of the core with the statement as its body. Not async, and the
   * events cost nothing unless someone listens: this is the drop-in's hot path.
   */
  #query(text: unknown, values: unknown, site: CallSite | undefined): Promise<unknown> {
    if (this.ending) return Promise.reject(new Error(MESSAGES.ended));
    const core = this.#core;
    // Inside withLease/withTx of this pool the statement joins that scope's client.
    if (findAmbient(core) !== undefined) return core.withLease((conn) => conn.query(text as string, values as unknown[]));
    this.#acquiring++;
    return core.scopedCallback((lease, done) => this.#queryOn(lease, text, values, done), this.#queryScope, site, this.#queryError);
  }

  /**
   * The statement on the lease's raw client, through pg's callback API as pg-pool's own query()
   * does: no promise of pg's, and the scope's promise the only one. Counted in flight, so a
   * deadline or shutdown that ends the lease mid-statement cancels it and never pools the
   * connection. As in pg-pool, a statement that fails closes its client.
   */
  #queryOn(lease: Lease<Client>, text: unknown, values: unknown, done: (err: unknown, result?: unknown) => void): void {
    this.#acquired();
    const record = lease.record;
    const raw = record.connection.raw as Tracked;
    const meta = this.#leased(raw, record);
    const events = this.listenerCount('acquire') + this.listenerCount('release') !== 0;
    if (events) this.#emit('acquire', raw as PoolClient);
    const ended = (err: Error | null, result: unknown): void => {
      statementEnded(record, raw, 'query', err, result);
      if (err || !raw._queryable || raw._ending) this.#retire(record.connection, raw, err);
      // pg-pool passes the query callback's `err`: null on success.
      if (events) this.#emit('release', err as Error, raw as PoolClient);
      done(err, result);
    };
    this.#core.adapter.observeStatement?.(raw, 'query', text);
    record.inflight++;
    noteSentStatement(record, text);
    try {
      meta.query.call(raw, text, values, ended);
    } catch (err) {
      // pg refuses some arguments synchronously (a null query): that statement never went out.
      ended(err as Error, undefined);
    }
  }

  /** Acquire failures of `pool.query()` as pg.Pool reports them; the statement's own errors as they are. */
  readonly #queryError = (err: unknown, started: boolean): unknown => {
    if (started) return err;
    this.#acquired();
    return this.#pgError(err);
  };

  /** One `connect()`/`query()` has its client, or failed to get one. */
  #acquired(): void {
    if (--this.#acquiring === 0 && this.#onAcquiresDone !== undefined) this.#onAcquiresDone();
  }

  /** Resolves once every `connect()`/`query()` made so far has its client (or failed), or after `timeoutMs`. */
  #acquiresDone(timeoutMs: number): Promise<void> {
    if (this.#acquiring === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(finish, timeoutMs);
      const self = this;
      function finish(): void {
        clearTimeout(timer);
        self.#onAcquiresDone = undefined;
        resolve();
      }
      this.#onAcquiresDone = finish;
    });
  }

  /** Errors of checking out a client, as pg.Pool reports them: pg's own error object where pg produced one. */
  #pgError(err: unknown): unknown {
    if (err instanceof AcquireTimeoutError) return new Error(MESSAGES.queueTimeout, { cause: err });
    if (err instanceof PoolClosedError) return new Error(MESSAGES.ended, { cause: err });
    if (err instanceof ConnectError) {
      if (this.#timeouts.has(err)) return new Error(MESSAGES.connectTimeout, { cause: err });
      const original = driverErrorOf(err) ?? HOOK_ERRORS.get(err);
      if (original !== undefined) return original;
      if (err.cause instanceof Error) return err.cause;
    }
    return err;
  }

  async #connect(
    base: Adapter<Client>,
    signal: AbortSignal,
    events: ConnectionEvents,
    verify: PoolConfig['verify'],
  ): Promise<Client> {
    signal.addEventListener(
      'abort',
      () => {
        const reason: unknown = signal.reason;
        if (!this.ending && reason !== null && typeof reason === 'object') this.#timeouts.add(reason);
      },
      { once: true },
    );
    let client: Client | undefined;
    this.#connecting++;
    let raw: Client;
    try {
      raw = await base.connect(signal, {
        onError: (err) => {
          // Idle or checked out is read first: the core closes an idle client at once.
          const idle = client !== undefined && (client as Tracked)[META]?.state === 'idle';
          events.onError(err); // the core marks it broken (and closes it if idle)
          if (client !== undefined) this.#clientError(client, err, idle);
        },
      });
    } finally {
      this.#connecting--;
    }
    // Past its deadline the core closes it unseen: never announced, never counted.
    if (signal.aborted) return raw;
    client = raw;
    const meta = this.#track(raw);
    this.#log('new client connected');
    this.#emit('connect', raw as PoolClient);
    if (verify !== undefined) {
      try {
        await new Promise<void>((resolve, reject) => verify(raw as PoolClient, (err?: Error) => (err ? reject(err) : resolve())));
      } catch (err) {
        await this.#close(base, raw);
        const error = new ConnectError(`pg: verify failed for a new connection to ${base.target}: ${redact(err instanceof Error ? err.message : String(err))}`, {
          cause: redactError(err),
        });
        HOOK_ERRORS.set(error, err);
        throw error;
      }
    }
    if (meta.state === 'setup') meta.state = 'idle';
    return raw;
  }

  /** Start tracking a connected client: counts, lifetime timer, use-after-release check. */
  #track(client: Tracked): ClientMeta {
    const original = client.query as unknown as QueryFn;
    const meta: ClientMeta = {
      state: 'setup',
      pooled: undefined,
      query: original,
      idleTimer: undefined,
      lifetimeTimer: undefined,
      expired: false,
      releasedAt: undefined,
      leaseId: 0,
    };
    client[META] = meta;
    this.#live.set(client, meta);
    if (this.#lifetimeMs !== Infinity) {
      meta.lifetimeTimer = setTimeout(this.#lifetimeOver, this.#lifetimeMs, client);
      meta.lifetimeTimer.unref();
    }
    if (typeof original === 'function') {
      // A query sent while the client sits released in the pool: pg-pool code can do it (the
      // pool hands out the client itself), and another borrower may get the client any moment.
      const pool = this;
      (client as unknown as { query: QueryFn }).query = function query(this: Client): unknown {
        if (meta.state === 'idle') pool.#usedAfterRelease(meta, query);
        // eslint-disable-next-line prefer-rest-params
        return original.apply(this, arguments as unknown as unknown[]);
      };
    }
    return meta;
  }

  /** The use-after-release report: a warning with both stacks and a count; a throw with `leasepool.useAfterRelease: 'throw'`. */
  #usedAfterRelease(meta: ClientMeta, entry: Function): void {
    this.#useAfterRelease++;
    const used: { stack?: string } = {};
    Error.captureStackTrace(used, entry);
    const message = `pg client of lease #${meta.leaseId} used after release() while idle in the pool`;
    if (this.#throwOnUseAfterRelease) throw new LeaseReleasedError(meta.leaseId, `${message}: check it out again with pool.connect()`);
    const releasedAt = formatStack(meta.releasedAt?.stack) ?? '    (release stack not recorded: leak detection off, or over leakStacksPerSecond)';
    this.#logger.warn(
      { pool: this.#core.name, leaseId: meta.leaseId },
      `pool "${this.#core.name}": ${message}; used at:\n${formatStack(used.stack) ?? ''}\nreleased at:\n${releasedAt}`,
    );
  }

  /**
   * The core put a client back in the pool (or is handing it straight to a waiting caller):
   * pg-pool's idle timer, restarted. One timer per client, re-armed with `refresh()` at each
   * release rather than a new timer per release and a clear per checkout (pg-pool's way, and most
   * of a hand-off's cost): it fires `idleTimeoutMillis` after the last release, and a client
   * checked out again by then is left alone.
   */
  #idle(meta: ClientMeta, client: Client): void {
    meta.state = 'idle';
    if (this.#idleTimeoutMs === Infinity || this.totalCount <= this.#min || this.ending) return;
    if (meta.idleTimer !== undefined) {
      meta.idleTimer.refresh();
      return;
    }
    meta.idleTimer = setTimeout(this.#idleOver, this.#idleTimeoutMs, client);
    if (this.#allowExitOnIdle) meta.idleTimer.unref();
  }

  readonly #idleOver = (client: Tracked): void => {
    const meta = client[META];
    if (meta === undefined) return;
    if (meta.state !== 'idle' || meta.pooled === undefined || this.totalCount <= this.#min) return;
    this.#log('remove idle client');
    this.#core.retireIdle(meta.pooled, 'idle');
  };

  readonly #lifetimeOver = (client: Tracked): void => {
    const meta = client[META];
    if (meta === undefined || meta.state === 'closed') return;
    this.#log('ending client due to expired lifetime');
    meta.expired = true;
    meta.lifetimeTimer = undefined;
    if (meta.pooled === undefined) return; // never checked out yet: retired at its first checkout
    meta.pooled.expiresAt = 0;
    if (meta.state === 'idle') this.#core.retireIdle(meta.pooled, 'lifetime');
  };

  async #close(base: Adapter<Client>, client: Client): Promise<void> {
    const meta = (client as Tracked)[META];
    // Uncounted at once, as pg-pool drops a client from its list before ending it.
    const known = meta !== undefined && this.#live.delete(client);
    if (meta !== undefined) {
      meta.state = 'closed';
      if (meta.idleTimer !== undefined) clearTimeout(meta.idleTimer);
      if (meta.lifetimeTimer !== undefined) clearTimeout(meta.lifetimeTimer);
      meta.idleTimer = meta.lifetimeTimer = undefined;
    }
    try {
      await base.close(client);
    } finally {
      if (known) this.#emit('remove', client as PoolClient);
    }
  }

  /**
   * A client's connection failed in the background. Idle: pg.Pool's `'error'` event
   * `(err, client)` — and when nobody listens, a log line instead of pg.Pool's process crash.
   * Checked out: like pg.Pool, the error belongs to the holder (listeners on the client, and its
   * next query fails); with no listener there, pg would crash the process — we log it.
   */
  #clientError(client: Client, err: unknown, idle: boolean): void {
    const error = err instanceof Error ? err : new Error(String(err));
    if (!idle) {
      if (client.listenerCount('error') <= 1) {
        this.#logger.error({ err: error }, `pg client failed while checked out: ${redact(error.message)}`);
      }
      return;
    }
    Object.defineProperty(error, 'client', { value: client, configurable: true, writable: true, enumerable: false });
    if (this.listenerCount('error') > 0) this.#emit('error', error, client as PoolClient);
    else this.#logger.error({ err: error }, `idle pg client failed (no 'error' listener on the pool; it was closed and will be replaced): ${redact(error.message)}`);
  }

  /** Emit a pg.Pool event; a throwing listener is logged, never breaks the pool. */
  #emit<K extends keyof PgPoolEvents>(event: K, ...args: Parameters<PgPoolEvents[K]>): void {
    if (this.listenerCount(event) === 0) return;
    try {
      this.emit(event, ...args);
    } catch (err) {
      this.#logger.error({ err }, `a pool '${event}' listener threw: ${redact(err instanceof Error ? err.message : String(err))}`);
    }
  }
}

/** pg's own `query` of a client the facade tracks (the pool's control statements bypass the use-after-release check). */
function queryOf(client: Client): QueryFn {
  return (client as Tracked)[META]?.query ?? (client.query as unknown as QueryFn);
}

/** A captured stack without its first line (the `Error` header). */
function formatStack(stack: string | undefined): string | undefined {
  if (stack === undefined) return undefined;
  const nl = stack.indexOf('\n');
  return nl === -1 ? stack : stack.slice(nl + 1);
}

// ---------------------------------------------------------------------------------------- options

/** Options of the pool itself: not passed to each client. */
const POOL_ONLY_KEYS = [
  'max',
  'min',
  'poolSize',
  'idleTimeoutMillis',
  'connectionTimeoutMillis',
  'maxUses',
  'maxLifetimeSeconds',
  'allowExitOnIdle',
  'log',
  'Promise',
  'Client',
  'onConnect',
  'verify',
] as const;

const LEASEPOOL_KEYS: ReadonlySet<string> = new Set([
  'name',
  'leakDetectionMs',
  'leakStacksPerSecond',
  'leaseTimeoutMs',
  'resetOnRelease',
  'metrics',
  'openTelemetry',
  'logger',
  'maxWaiting',
  'endTimeoutMs',
  'useAfterRelease',
]);

interface ResolvedPgOptions {
  readonly max: number;
  readonly min: number;
  readonly maxUses: number;
  readonly idleTimeoutMs: number;
  readonly lifetimeMs: number;
  readonly acquireTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly allowExitOnIdle: boolean;
  readonly endTimeoutMs: number;
  /** `pool.options` fields after pg-pool's defaults. */
  readonly shown: Pick<PgPoolOptions, 'max' | 'min' | 'maxUses' | 'allowExitOnIdle' | 'maxLifetimeSeconds' | 'idleTimeoutMillis'>;
}

/**
 * pg-pool's defaults and meanings (a falsy `max` is 10, a 0 timeout is "none", …), and a
 * `ConfigError` naming every value pg-pool would silently misuse (leasepool's rule: every option
 * takes effect or says why not).
 */
function resolvePgOptions(config: Omit<PgPoolConfig, 'leasepool'>, lp: PgPoolLeasepoolOptions): ResolvedPgOptions {
  const problems: { field: string; problem: string }[] = [];
  const positiveInt = (field: string, value: unknown, allowInfinity: boolean): void => {
    if (allowInfinity && value === Infinity) return;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
      problems.push({ field, problem: `must be a positive integer${allowInfinity ? ' or Infinity' : ''} (got ${show(value)})` });
    }
  };
  const duration = (field: string, value: unknown, unit: string): void => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      problems.push({ field, problem: `must be a number of ${unit} >= 0 (got ${show(value)})` });
    }
  };

  const max = config.max || config.poolSize || 10;
  positiveInt(config.max ? 'max' : 'poolSize', max, false);
  const min = config.min || 0;
  if (min !== 0) positiveInt('min', min, false);
  if (Number.isInteger(max) && max >= 1 && typeof min === 'number' && min > max) problems.push({ field: 'min', problem: `must not exceed max (min=${min}, max=${max})` });
  const maxUses = config.maxUses || Infinity;
  positiveInt('maxUses', maxUses, true);
  const idle = config.idleTimeoutMillis === undefined ? 10_000 : config.idleTimeoutMillis;
  if (idle !== null) duration('idleTimeoutMillis', idle, 'milliseconds');
  const connectTimeout = config.connectionTimeoutMillis || 0;
  duration('connectionTimeoutMillis', connectTimeout, 'milliseconds');
  const lifetimeSeconds = config.maxLifetimeSeconds || 0;
  duration('maxLifetimeSeconds', lifetimeSeconds, 'seconds');
  for (const key of ['log', 'onConnect', 'verify', 'Client'] as const) {
    const value: unknown = config[key];
    if (value !== undefined && typeof value !== 'function') problems.push({ field: key, problem: `must be a function (got ${show(value)})` });
  }
  if (config.Promise !== undefined && config.Promise !== Promise) {
    problems.push({ field: 'Promise', problem: 'custom Promise implementations are not supported: the pool returns native promises' });
  }
  if (lp === null || typeof lp !== 'object') {
    problems.push({ field: 'leasepool', problem: `must be an object of leasepool options (got ${show(lp)})` });
  } else {
    for (const key of Object.keys(lp)) if (!LEASEPOOL_KEYS.has(key)) problems.push({ field: `leasepool.${key}`, problem: 'is not a leasepool option of the pg Pool' });
    if (lp.endTimeoutMs !== undefined) duration('leasepool.endTimeoutMs', lp.endTimeoutMs, 'milliseconds');
    if (lp.useAfterRelease !== undefined && lp.useAfterRelease !== 'warn' && lp.useAfterRelease !== 'throw') {
      problems.push({ field: 'leasepool.useAfterRelease', problem: `must be 'warn' or 'throw' (got ${show(lp.useAfterRelease)})` });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const idleMs = idle === null || idle === 0 ? Infinity : idle;
  return {
    max,
    min,
    maxUses,
    idleTimeoutMs: idleMs,
    lifetimeMs: lifetimeSeconds === 0 ? Infinity : lifetimeSeconds * 1000,
    acquireTimeoutMs: connectTimeout === 0 ? Infinity : connectTimeout + WAIT_AFTER_CONNECT_TIMEOUT_MS,
    connectTimeoutMs: connectTimeout === 0 ? NO_CONNECT_TIMEOUT_MS : connectTimeout,
    allowExitOnIdle: Boolean(config.allowExitOnIdle),
    endTimeoutMs: lp.endTimeoutMs ?? DEFAULT_END_TIMEOUT_MS,
    shown: {
      max,
      min,
      maxUses,
      allowExitOnIdle: Boolean(config.allowExitOnIdle),
      maxLifetimeSeconds: lifetimeSeconds,
      idleTimeoutMillis: idle,
    },
  };
}

/** Like pg-pool: the password (and an ssl key) stay on the options but out of logs and inspection. */
function hideSecrets(options: PgPoolOptions): PgPoolOptions {
  if ('password' in options) {
    Object.defineProperty(options, 'password', { value: options.password, enumerable: false, writable: true, configurable: true });
  }
  const ssl = options.ssl;
  if (ssl !== null && typeof ssl === 'object' && 'key' in ssl) {
    const copy = { ...ssl };
    Object.defineProperty(copy, 'key', { value: ssl.key, enumerable: false, writable: true, configurable: true });
    options.ssl = copy;
  }
  return options;
}

/** The default logger, with info/debug lines going to pg-pool's `log` option when given. */
function withDebug(logger: Logger, log: (...messages: unknown[]) => void): Logger {
  if (log === noop) return logger;
  return {
    warn: (obj, msg) => logger.warn(obj, msg),
    error: (obj, msg) => logger.error(obj, msg),
    info: (obj, msg) => log(msg ?? obj, obj),
    debug: (obj, msg) => log(msg ?? obj, obj),
  };
}

const noop = (): void => undefined;
