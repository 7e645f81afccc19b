/**
 * Drop-in replacement for `mysql2/promise`'s `createPool`, backed by a leasepool pool.
 *
 * ```ts
 * // before: import { createPool } from 'mysql2/promise';
 * import { createPool } from 'leasepool/adapters/mysql2';
 * const pool = createPool({ host, user, database, connectionLimit: 10 });
 * const [rows] = await pool.query('SELECT * FROM t WHERE id = ?', [id]);
 * ```
 *
 * Same options, methods, events and results as mysql2's promise pool; on top: a connection released
 * inside a transaction is rolled back, leaked connections are reported with the stack that took
 * them, metrics, `pool.withTx(fn)`, and `end()` with a deadline. Every deliberate difference is
 * listed in docs/migration-from-mysql2.md.
 *
 * Everything else `mysql2/promise` exports is re-exported from here unchanged (`createConnection`,
 * `format`, `escape`, `escapeId`, `raw`, `Types`, the types …), so this module is `mysql2/promise`
 * with `createPool` replaced.
 */
import { EventEmitter } from 'node:events';
import { escape as sqlEscape, escapeId as sqlEscapeId, format as sqlFormat } from 'mysql2';
import type { Connection as CoreConnection, ExecuteValues, FieldPacket, Pool as CorePool, QueryOptions, QueryResult, QueryValues, SqlValue, Timezone } from 'mysql2';
import { PoolConnection as PromisePoolConnectionClass } from 'mysql2/promise';
import type { Connection as PromiseConnection, PoolConnection, PoolOptions as Mysql2PoolOptions } from 'mysql2/promise';

import { CallbackPool, warnEndDeprecated } from './callback-pool';

import { findAmbient } from '../../src/context';
import { noteSentStatement, statementEnded } from '../../src/guard';
import { ConfigError, ConnectError, PoolClosedError, PoolQueueFullError } from '../../src/errors';
import type { Adapter } from '../../src/adapter';
import type { CallSite, Lease } from '../../src/lease';
import type { Logger } from '../../src/logger';
import type { MetricsOptions } from '../../src/metrics';
import type { OpenTelemetryOptions } from '../../src/telemetry/types';
import { createPool as createLeasepool, type Pool as Leasepool, type PoolStats } from '../../src/pool';
import { runTransaction, type Transaction, type TxOptions } from '../../src/transaction';
import { mysqlAdapter, type MysqlAdapterOptions } from './adapter';
import type { MysqlConnectionConfig } from './config';
import type { PasswordSource } from '../../src/credentials';
import { applyCallerStack, captureCaller } from './statements';

// `mysql2/promise` with createPool replaced: the local `createPool`, `Pool` and `PoolOptions` shadow mysql2's.
export * from 'mysql2/promise';

/** leasepool's own options of the drop-in pool (the `leasepool` key of {@link PoolOptions}). */
export interface CompatLeasepoolOptions {
  /** Pool name: the `pool` label of the metrics and the prefix of log lines. Default `'default'`. */
  name?: string;
  /** A connection held longer than this is reported (once) with the stack that took it. 0 disables. Default 30 000. */
  leakDetectionMs?: number;
  /** Most acquire stacks recorded per second for leak reports (leasepool's `leakStacksPerSecond`). Default 100. */
  leakStacksPerSecond?: number;
  /** A connection held longer than this is taken back: its statement cancelled, its transaction rolled back, the connection closed. Default: never. */
  leaseTimeoutMs?: number;
  /** Prometheus metrics into this prom-client registry (`{ registry }`); `false` or omitted disables them. */
  metrics?: MetricsOptions | false;
  /** OpenTelemetry spans and `db.client.connection.*` metrics (leasepool's `openTelemetry`; needs `@opentelemetry/api`). Default off. */
  openTelemetry?: OpenTelemetryOptions | boolean | undefined;
  /** Where leak reports and background connection errors go (pino-compatible). Default: console. */
  logger?: Logger;
  /** Reset the session (`COM_RESET_CONNECTION`) at every release. Same as mysql2's top-level `resetOnRelease`. */
  resetOnRelease?: boolean;
  /** How long `end()` waits for connections still held before taking them back. Default 10 000. */
  endTimeoutMs?: number;
  /** Longest wait for a free connection before `AcquireTimeoutError`. Default `Infinity`, as mysql2 (which waits forever). */
  acquireTimeoutMs?: number;
  /** Retire a connection at its first release after this age. Default `Infinity` (mysql2 has no such limit). */
  maxLifetimeMs?: number;
  /** Retire a connection after this many uses. Default `Infinity`. */
  maxUses?: number;
  /** Options of the mysql2 adapter itself (`retryOnLockWaitTimeout`, `closeTimeoutMs`, `cancelTimeoutMs`). */
  adapter?: MysqlAdapterOptions;
}

/**
 * mysql2's `PoolOptions` (connection options and pool options), plus leasepool's under `leasepool`;
 * `password` may also be a function, called for every new connection (a rotating credential).
 */
export interface PoolOptions extends Omit<Mysql2PoolOptions, 'password'> {
  /** The password, or a (sync or async) function returning it, called once per new connection. */
  password?: PasswordSource | undefined;
  leasepool?: CompatLeasepoolOptions;
}

/**
 * Events of the drop-in pool. As in mysql2, the payload is the driver's core (callback) connection
 * under the promise connection (mysql2's typings call it a promise `PoolConnection`; at run time it
 * is the core one, and so it is here): use it for `threadId`, logging or session setup in
 * `'connection'`, not to run statements behind the pool's back.
 */
export interface CompatPoolEvents {
  /** A new connection was opened (before it is first handed out). */
  connection: [connection: CoreConnection];
  /** A connection was handed out (by `getConnection`, `query`, `execute` or `withTx`). */
  acquire: [connection: CoreConnection];
  /** A connection went back to the pool, clean (not emitted when it was destroyed instead). */
  release: [connection: CoreConnection];
  /** A caller found no free connection and no room for a new one: it waits. */
  enqueue: [];
  /** A pooled connection failed in the background (killed while idle, lost socket). Without a listener it is logged. */
  error: [error: Error];
}

/** mysql2 options the pool consumes (mapped to leasepool options, never handed to the driver), and their defaults. */
const POOL_KEYS = ['connectionLimit', 'queueLimit', 'waitForConnections', 'maxIdle', 'idleTimeout', 'resetOnRelease', 'connectTimeout'] as const;
const LEASEPOOL_KEYS: ReadonlySet<string> = new Set([
  'name',
  'leakDetectionMs',
  'leakStacksPerSecond',
  'leaseTimeoutMs',
  'metrics',
  'openTelemetry',
  'logger',
  'resetOnRelease',
  'endTimeoutMs',
  'acquireTimeoutMs',
  'maxLifetimeMs',
  'maxUses',
  'adapter',
]);
const DEFAULT_CONNECTION_LIMIT = 10;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_END_TIMEOUT_MS = 10_000;

/** mysql2's messages for the pool's own failures (apps match on them; leasepool's class and code are kept). */
export const MYSQL2_MESSAGES = {
  noConnections: 'No connections available.',
  queueLimit: 'Queue limit reached.',
  closed: 'Pool is closed.',
  callback: 'Callback function is not available with promise clients.',
} as const;

/** The mysql2 core connection under a promise connection (what mysql2's pool events carry). */
function coreOf(conn: PromiseConnection): CoreConnection {
  return (conn as unknown as { connection: CoreConnection }).connection;
}

/** Run one statement the way mysql2's promise pool does: `values` passed to query only when defined, to execute only when truthy. */
function send(conn: PromiseConnection, method: 'query' | 'execute', sql: string | QueryOptions, values: unknown): Promise<unknown> {
  const c = conn as unknown as StatementMethods;
  if (method === 'query') return values !== undefined ? c.query(sql, values) : c.query(sql);
  return values ? c.execute(sql, values) : c.execute(sql);
}

/** The driver's callback API on the core connection (what mysql2's own pool.query uses). */
interface CallbackStatements {
  query(sql: string | QueryOptions, ...rest: unknown[]): void;
  execute(sql: string | QueryOptions, ...rest: unknown[]): void;
}

/** The statement methods of mysql2's promise connection. */
interface StatementMethods {
  query(sql: string | QueryOptions, values?: unknown): Promise<unknown>;
  execute(sql: string | QueryOptions, values?: unknown): Promise<unknown>;
}

/** Set on a raw connection while it is leased: `'release'` is emitted only for connections that were handed out. */
const LEASED = Symbol('leasepool.mysql2.leased');
type Marked = PromiseConnection & { [LEASED]?: boolean };
const NOTIFY = Symbol('leasepool.mysql2.notify');
/** The pool events mysql2's promise pool takes from its core pool. */
const INHERITED_EVENTS: ReadonlySet<string> = new Set(['connection', 'acquire', 'release', 'enqueue']);

// mysql2 destroys the connection of a pool.query/execute that failed because the server is read-only
// (Aurora failover: the endpoint now points at a reader). 1290 ER_OPTION_PREVENTS_STATEMENT,
// 1792 ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, 1836 ER_READ_ONLY_MODE.
const READ_ONLY_ERRNOS: ReadonlySet<unknown> = new Set([1290, 1792, 1836]);
function isReadOnlyError(err: unknown): boolean {
  return err !== null && typeof err === 'object' && READ_ONLY_ERRNOS.has((err as { errno?: unknown }).errno);
}

/** Give a leasepool error mysql2's message (class, `code` and stack frames are kept). */
function withMessage<E extends Error>(err: E, message: string): E {
  if (err.message === message) return err;
  const stack = err.stack;
  err.message = message;
  if (typeof stack === 'string') {
    const frames = stack.indexOf('\n    at ');
    err.stack = `${err.name}: ${message}${frames >= 0 ? stack.slice(frames) : ''}`;
  }
  return err;
}

/**
 * mysql2 code reads a connect failure's `errno` and `sqlState` on the error itself (`err.errno ===
 * 1045`): copy them from the driver's error (the redacted cause) onto the ConnectError. Its `code`
 * stays leasepool's `CONNECT_FAILED` (the driver's is on `err.cause.code`); numbers and SQLSTATEs
 * carry no secret.
 */
function withDriverNumbers(err: ConnectError): void {
  const cause = (err as { cause?: unknown }).cause;
  if (cause === null || typeof cause !== 'object' || !Object.isExtensible(err)) return;
  const { errno, sqlState } = cause as { errno?: unknown; sqlState?: unknown };
  const target = err as unknown as { errno?: unknown; sqlState?: unknown };
  if (typeof errno === 'number' && target.errno === undefined) target.errno = errno;
  if (typeof sqlState === 'string' && /^[0-9A-Z_]{5}$/.test(sqlState) && target.sqlState === undefined) target.sqlState = sqlState;
}

interface Settings {
  readonly waitForConnections: boolean;
  readonly gracefulEnd: boolean;
  readonly stringifyObjects: boolean;
  readonly timezone: Timezone;
  readonly endTimeoutMs: number;
  /** mysql2's `trace`: a statement's error carries the stack of the `pool.query()` call. */
  readonly trace: boolean;
  /** The pool's own settings as mysql2's `pool.pool.config` has them. */
  readonly poolConfig: Readonly<Record<string, unknown>>;
  /** The connection options a command built by `pool.pool.query(sql)` takes, as mysql2's createQuery reads them. */
  readonly queryDefaults: Readonly<Record<string, unknown>>;
}

/**
 * Members mysql2's typings give its promise pool (its `Pool` type extends the promise `Connection`)
 * that its promise pool does not have at run time: `ping`, `beginTransaction`, `threadId`, …
 * Typed here as there, so that the drop-in is assignable to mysql2's `Pool`; absent at run time
 * here as there (`typeof pool.ping` is `'undefined'` on both). Use a connection for them.
 */
type ConnectionOnlyMembers = Pick<
  PromiseConnection,
  | 'config'
  | 'threadId'
  | 'state'
  | 'connect'
  | 'ping'
  | 'reset'
  | 'beginTransaction'
  | 'commit'
  | 'rollback'
  | 'changeUser'
  | 'prepare'
  | 'unprepare'
  | 'destroy'
  | 'pause'
  | 'resume'
>;

// Declaration merging: the class below gets these members in its type only (see ConnectionOnlyMembers).
export interface Pool extends ConnectionOnlyMembers {}

/**
 * The drop-in pool returned by {@link createPool}: mysql2's promise pool API (`query`, `execute`,
 * `getConnection`, `releaseConnection`, `end`, `escape`, `escapeId`, `format`, events `connection`,
 * `acquire`, `enqueue`, `release`) plus `withTx`, `stats()` and the underlying `leasepool` pool.
 */
export class Pool extends EventEmitter<CompatPoolEvents> {
  readonly #core: Leasepool<PromiseConnection>;
  readonly #settings: Settings;
  readonly #forwarders = new Map<'error', (err: Error) => void>();
  readonly #handles = new WeakMap<object, () => Promise<void>>();
  readonly #callbackPool: CallbackPool;

  /** @internal use {@link createPool} */
  constructor(core: Leasepool<PromiseConnection>, settings: Settings) {
    super();
    this.#core = core;
    this.#settings = settings;
    this.#callbackPool = new CallbackPool(
      {
        acquire: (site) => core.acquireLease(core.options.acquireTimeoutMs, undefined, site, undefined, true).catch((err: unknown) => {
          throw this.#translate(err);
        }),
        captureSite: (entry) => core.captureAcquireSite(entry),
        wrapPromise: (lease) => this.#wrap(lease),
        gracefulEnd: settings.gracefulEnd,
        facade: this,
        stats: () => core.stats(),
        queryDefaults: settings.queryDefaults,
        subscribeEnqueue: (listener) => {
          core.on('enqueue', listener);
          return () => void core.off('enqueue', listener);
        },
      },
      settings.poolConfig,
    );
    // As in mysql2, the pool's events come from the callback pool (mysql2: `pool.pool`), `enqueue`
    // there from the core, and `error` from the core: each link is made only while someone listens,
    // so nothing is even emitted otherwise (an unobserved background error is logged).
    const untyped = this as unknown as EventEmitter;
    const callbackPool = this.#callbackPool;
    const inherited = new Map<string, (...args: unknown[]) => void>();
    untyped.on('newListener', (event: string | symbol) => {
      if (typeof event !== 'string' || this.listenerCount(event as keyof CompatPoolEvents) !== 0) return;
      if (INHERITED_EVENTS.has(event)) {
        const forward = (...args: unknown[]): void => void untyped.emit(event, ...args);
        inherited.set(event, forward);
        callbackPool.on(event, forward);
      } else if (event === 'error') this.#forward(event);
    });
    untyped.on('removeListener', (event: string | symbol) => {
      if (typeof event !== 'string' || this.listenerCount(event as keyof CompatPoolEvents) !== 0) return;
      const forward = inherited.get(event);
      if (forward !== undefined) {
        inherited.delete(event);
        callbackPool.off(event, forward);
      } else if (event === 'error') this.#unforward(event);
    });
  }

  /** @internal Called by the adapter hooks (connection opened, leased, back to idle). Never throws. */
  [NOTIFY](event: 'connection' | 'acquire' | 'release', conn: PromiseConnection): void {
    // Listeners here are reached through the callback pool (see the constructor).
    const callbackPool = this.#callbackPool;
    if (callbackPool.listenerCount(event) === 0) return;
    try {
      callbackPool.emit(event, coreOf(conn));
    } catch (err) {
      // A throwing listener must not break the pool's bookkeeping (the hooks run inside it).
      this.#core.logger.error({ pool: this.#core.name, err }, `pool "${this.#core.name}": a '${event}' listener threw: ${String((err as Error | undefined)?.message ?? err)}`);
    }
  }

  /** The leasepool pool underneath: `stats()`, `activeLeases()`, events `leak`, `reclaim`, … */
  get leasepool(): Leasepool<PromiseConnection> {
    return this.#core;
  }

  /**
   * mysql2's core (callback) pool under the promise pool, as mysql2's `promisePool.pool`: the same
   * connections, limits and guarantees, in the callback API (`getConnection(cb)`, `query(sql, values,
   * cb)`, `end(cb)`, events). For libraries that take a callback pool, e.g. Kysely's `MysqlDialect`.
   * Of mysql2's private lists (`_allConnections` …) only their `length` is there: use {@link stats}.
   */
  get pool(): CorePool {
    // Typed as mysql2's core Pool (what code reads `promisePool.pool` as); the members it lacks are
    // listed in docs/migration-from-mysql2.md.
    return this.#callbackPool as unknown as CorePool;
  }

  /** The promise constructor of the results (mysql2's `pool.Promise`): always the native one here. */
  get Promise(): PromiseConstructor {
    return Promise;
  }

  /**
   * A read-only snapshot of the pool's state — what mysql2 users read from private fields
   * (`pool.pool._allConnections.length` …): `size` (open connections, `_allConnections`), `idle`
   * (`_freeConnections`), `active` (checked out), `pending` (callers waiting, `_connectionQueue`),
   * `max` (`connectionLimit`), `min`, `closed` (`_closed`). Same as `pool.leasepool.stats()`.
   */
  stats(): PoolStats {
    return this.#core.stats();
  }

  /**
   * Borrow a connection; give it back with `connection.release()` (or close it with
   * `connection.destroy()`). Released inside a transaction, it is rolled back first. Any use after
   * `release()` throws `LeaseReleasedError` (a second `release()` is a no-op, as in mysql2).
   */
  getConnection(): Promise<PoolConnection> {
    const core = this.#core;
    // The leak report's acquire stack starts at the caller of getConnection(), not in this file.
    const site = core.captureAcquireSite(this.getConnection);
    return core.acquireLease(core.options.acquireTimeoutMs, undefined, site, undefined, true).then(
      (lease) => this.#wrap(lease),
      (err: unknown) => {
        throw this.#translate(err);
      },
    );
  }

  /** Give back a connection obtained from `getConnection()` (same as `connection.release()`). */
  releaseConnection(connection: PoolConnection): void {
    const release = this.#handles.get(connection);
    if (release !== undefined) void release();
  }

  /** Run one statement on a pooled connection (the one of the enclosing `withTx`, if any). Resolves `[rows, fields]`. */
  query<T extends QueryResult>(sql: string | QueryOptions, values?: QueryValues): Promise<[T, FieldPacket[]]> {
    if (typeof values === 'function') throw new Error(MYSQL2_MESSAGES.callback);
    const site = this.#core.captureAcquireSite(this.query);
    const caller = this.#settings.trace ? captureCaller(this.query) : undefined;
    return this.#statement('query', sql, values, site, caller) as Promise<[T, FieldPacket[]]>;
  }

  /** Prepare (cached per connection) and execute one statement on a pooled connection. Resolves `[rows, fields]`. */
  execute<T extends QueryResult>(sql: string | QueryOptions, values?: ExecuteValues): Promise<[T, FieldPacket[]]> {
    if (typeof values === 'function') throw new Error(MYSQL2_MESSAGES.callback);
    const site = this.#core.captureAcquireSite(this.execute);
    const caller = this.#settings.trace ? captureCaller(this.execute) : undefined;
    return this.#statement('execute', sql, values, site, caller) as Promise<[T, FieldPacket[]]>;
  }

  /**
   * leasepool's transaction scope: `START TRANSACTION`, `fn(conn, tx)`, `COMMIT`, or `ROLLBACK` and
   * rethrow. `pool.query`/`pool.execute`/`withTx` called inside join it (nested `withTx` is a savepoint).
   */
  withTx<R>(fn: (conn: PromiseConnection, tx: Transaction<PromiseConnection>) => R | PromiseLike<R>, options?: TxOptions): Promise<R> {
    const site = this.#core.captureAcquireSite(this.withTx);
    return runTransaction(this.#core, fn, options, site);
  }

  /**
   * Close the pool: new requests fail with `Pool is closed.`, connections still held are waited for
   * up to `leasepool.endTimeoutMs` and then taken back (rolled back, closed); idle ones are closed.
   */
  end(): Promise<void> {
    return this.#core.close({ timeoutMs: this.#settings.endTimeoutMs }).then(() => undefined);
  }

  /** `await using pool = createPool(…)` ends the pool. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#core.stats().closed) await this.end();
  }

  /** Escape a value as mysql2's pool does (same `stringifyObjects` and `timezone`). */
  escape(value: unknown): string {
    return sqlEscape(value as SqlValue, this.#settings.stringifyObjects, this.#settings.timezone);
  }

  /** Escape an identifier as mysql2's pool does. */
  escapeId(value: string | string[]): string {
    return sqlEscapeId(value, false);
  }

  /** Format `sql` with `?`/`??` placeholders as mysql2's pool does. */
  format(sql: string, values?: unknown): string {
    return sqlFormat(sql, values as SqlValue | SqlValue[], this.#settings.stringifyObjects, this.#settings.timezone);
  }

  // ------------------------------------------------------------------------------------------

  /**
   * `pool.query()`/`pool.execute()`: a scope of the core whose body sends the statement on the
   * driver's callback API, as mysql2's own pool does — one promise, and the stack of the caller
   * captured at `pool.query()` (mysql2's `trace`) instead of deep inside the scope. The lease's
   * bookkeeping (statement in flight, transaction status, fatal errors) is the guard's own
   * (`statementEnded`). Inside withTx, or another scope of this pool, the statement joins that
   * scope's connection instead.
   */
  #statement(
    method: 'query' | 'execute',
    sql: string | QueryOptions,
    values: unknown,
    site: CallSite | undefined,
    caller: { stack?: string } | undefined,
  ): Promise<unknown> {
    const core = this.#core;
    const ambient = findAmbient(core);
    if (ambient !== undefined) {
      return Promise.resolve(ambient.lease)
        .then((lease) => send(lease.conn, method, sql, values))
        .catch((err: unknown) => {
          throw this.#translate(err);
        });
    }
    return core.scopedCallback<unknown>(
      (lease, done) => {
        const record = lease.record;
        const raw = record.connection.raw;
        core.adapter.observeStatement?.(raw, method, sql);
        const ended = (err: unknown, rows: unknown, fields: unknown): void => {
          if (err) {
            statementEnded(record, raw, method, err, undefined);
            // mysql2's pool destroys the connection of a statement refused by a read-only server.
            if (isReadOnlyError(err)) void (lease.conn as unknown as { destroy(): Promise<void> }).destroy();
            applyCallerStack(err, caller);
            return done(err);
          }
          const result = [rows, fields];
          statementEnded(record, raw, method, undefined, result);
          done(undefined, result);
        };
        const driver = coreOf(raw) as unknown as CallbackStatements;
        record.inflight++;
        noteSentStatement(record, sql);
        try {
          if (method === 'query') {
            if (values !== undefined) driver.query(sql, values, ended);
            else driver.query(sql, ended);
          } else if (values) driver.execute(sql, values, ended);
          else driver.execute(sql, ended);
        } catch (err) {
          // Refused before it was sent: not in flight.
          ended(err, undefined, undefined);
        }
      },
      undefined,
      site,
      this.#translateError,
    );
  }

  readonly #translateError = (err: unknown): unknown => this.#translate(err);

  #wrap(lease: Lease<PromiseConnection>): PoolConnection {
    const guarded = lease.conn;
    const release = (): Promise<void> => (lease.state === 'active' ? quiet(lease.release()) : Promise.resolve());
    const destroy = (): Promise<void> =>
      lease.state === 'active' ? quiet((guarded as unknown as { destroy(): Promise<void> }).destroy()) : Promise.resolve();
    // mysql2: `end()` on a pooled connection releases it (deprecated), or closes it with `gracefulEnd`.
    const end = this.#settings.gracefulEnd
      ? destroy
      : (): Promise<void> => {
          if (lease.state === 'active') warnEndDeprecated(coreOf(lease.record.connection.raw));
          return release();
        };
    // The handle forwards to the guarded connection. Its own target is a blank object: the
    // engine checks a proxy's answers against its target, and the guarded connection throws on
    // every inspection once released, which would make even a second `release()` throw.
    const handle = new Proxy(Object.create(null) as object, {
      get(_blank, prop) {
        switch (prop) {
          case 'release':
          case Symbol.asyncDispose:
          case Symbol.dispose:
            return release;
          case 'destroy':
            return destroy;
          case 'end':
            return end;
          default:
            return Reflect.get(guarded, prop);
        }
      },
      set: (_blank, prop, value) => Reflect.set(guarded, prop, value),
      has: (_blank, prop) => Reflect.has(guarded, prop),
      ownKeys: () => Reflect.ownKeys(guarded),
      getOwnPropertyDescriptor(_blank, prop) {
        const descriptor = Reflect.getOwnPropertyDescriptor(guarded, prop);
        return descriptor === undefined ? undefined : { ...descriptor, configurable: true };
      },
      defineProperty: (_blank, prop, descriptor) => Reflect.defineProperty(guarded, prop, descriptor),
      deleteProperty: (_blank, prop) => Reflect.deleteProperty(guarded, prop),
      // A PoolConnection of mysql2/promise, as mysql2's getConnection() gives (`instanceof` holds).
      getPrototypeOf: () => PromisePoolConnectionClass.prototype,
    }) as unknown as PoolConnection;
    this.#handles.set(handle, release);
    return handle;
  }

  #translate(err: unknown): unknown {
    if (err instanceof PoolQueueFullError) {
      return withMessage(err, this.#settings.waitForConnections ? MYSQL2_MESSAGES.queueLimit : MYSQL2_MESSAGES.noConnections);
    }
    if (err instanceof PoolClosedError) return withMessage(err, MYSQL2_MESSAGES.closed);
    if (err instanceof ConnectError) withDriverNumbers(err);
    return err;
  }

  #forward(event: 'error'): void {
    const listener = (err: Error): void => void this.emit('error', err);
    this.#core.on('error', listener);
    this.#forwarders.set(event, listener);
  }

  #unforward(event: 'error'): void {
    const forwarder = this.#forwarders.get(event);
    if (forwarder === undefined) return;
    this.#forwarders.delete(event);
    this.#core.off(event, forwarder);
  }
}

/** A release promise that never becomes an unhandled rejection when nobody awaits it (mysql2's release() returns nothing). */
function quiet(promise: Promise<void>): Promise<void> {
  promise.catch(() => undefined);
  return promise;
}

// ---------------------------------------------------------------------------------------------
// Options.

type Problem = { field: string; problem: string };

/** mysql2's `ConnectionConfig.parseUrl`: URL parts, then query parameters (JSON-parsed when they parse). */
function parseMysqlUrl(url: string, field: string): Record<string, unknown> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Never echo the URL: it may carry the password.
    throw new ConfigError([{ field, problem: 'is not a valid mysql:// URL' }]);
  }
  const host = parsed.hostname;
  const options: Record<string, unknown> = {
    host: decodeURIComponent(host.startsWith('[') ? host.slice(1, -1) : host),
    port: parseInt(parsed.port, 10),
    database: decodeURIComponent(parsed.pathname.slice(1)),
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
  };
  for (const [key, value] of parsed.searchParams) {
    if (key in options) continue;
    try {
      options[key] = JSON.parse(value) as unknown;
    } catch {
      options[key] = value;
    }
  }
  return options;
}

/** The options object as mysql2 sees it: a URL string or `uri` expanded, explicit options winning. */
function expand(config: string | PoolOptions): Record<string, unknown> {
  if (typeof config === 'string') return parseMysqlUrl(config, 'config');
  if (config === null || typeof config !== 'object') {
    throw new ConfigError([{ field: 'config', problem: 'must be a mysql:// URL or a PoolOptions object' }]);
  }
  const options: Record<string, unknown> = { ...config };
  if (typeof options.uri === 'string') {
    const fromUri = parseMysqlUrl(options.uri, 'config.uri');
    delete options.uri;
    // mysql2 (ConnectionConfig): a falsy explicit option is filled from the URI.
    for (const [key, value] of Object.entries(fromUri)) if (!options[key]) options[key] = value;
  }
  return options;
}

/** mysql2 reads pool numbers with `isNaN(x) ? default : Number(x)`; here a value that is not a number is an error. */
function numberOption(problems: Problem[], options: Record<string, unknown>, key: string, fallback: number, rule: { min: number; integer: boolean }): number {
  const raw = options[key];
  if (raw === undefined || raw === null) return fallback;
  const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < rule.min || (rule.integer && !Number.isInteger(value))) {
    problems.push({ field: key, problem: `must be ${rule.integer ? 'an integer' : 'a number'} >= ${rule.min} (got ${describe(raw)})` });
    return fallback;
  }
  return value;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeof value;
}

/** mysql2's `timezone` normalisation (ConnectionConfig): invalid → `'Z'`, default `'local'`, `' 05:00'` → `'+05:00'`. */
function normaliseTimezone(value: unknown): Timezone {
  if (typeof value !== 'string' || value === '') return 'local';
  if (!/^(?:local|Z|[ +-]\d\d:\d\d)$/.test(value)) return 'Z';
  return (value.startsWith(' ') ? `+${value.slice(1)}` : value) as Timezone;
}

/**
 * Drop-in for `mysql2/promise`'s `createPool`: the same options (a `mysql://` URL or an options
 * object), plus leasepool's under `leasepool`.
 *
 * Pool options map to leasepool as follows: `connectionLimit` → `max` (default 10; `0`, unlimited
 * in mysql2, is refused); `queueLimit` → `maxWaiting` (0 = unlimited); `waitForConnections: false`
 * → `maxWaiting: 0`; `connectTimeout` → `connectTimeoutMs` (default 10 000; it covers DNS, TCP, TLS
 * and the handshake); `idleTimeout` → `idleTimeoutMs` when `maxIdle < connectionLimit`, otherwise
 * idle connections are never closed (mysql2 runs its idle reaper only in that case); connections are
 * opened on demand (`min: 0`). The other options go to each connection unchanged.
 *
 * @throws ConfigError naming every bad option (mysql2 would silently use a default instead).
 */
export function createPool(config: string | PoolOptions): Pool {
  const options = expand(config);
  const problems: Problem[] = [];

  const leasepoolRaw = options.leasepool;
  delete options.leasepool;
  delete options.Promise; // mysql2's custom promise constructor: leasepool returns native promises
  const lp: CompatLeasepoolOptions = {};
  if (leasepoolRaw !== undefined) {
    if (leasepoolRaw === null || typeof leasepoolRaw !== 'object') problems.push({ field: 'leasepool', problem: 'must be an object' });
    else {
      for (const key of Object.keys(leasepoolRaw)) {
        if (!LEASEPOOL_KEYS.has(key)) problems.push({ field: `leasepool.${key}`, problem: 'is not a known option' });
      }
      Object.assign(lp, leasepoolRaw);
    }
  }

  const connectionLimit = numberOption(problems, options, 'connectionLimit', DEFAULT_CONNECTION_LIMIT, { min: 0, integer: true });
  if (connectionLimit === 0) {
    problems.push({ field: 'connectionLimit', problem: 'must be at least 1 (an unlimited pool, 0 in mysql2, is not supported)' });
  }
  const maxIdle = numberOption(problems, options, 'maxIdle', connectionLimit, { min: 0, integer: true });
  const idleTimeout = numberOption(problems, options, 'idleTimeout', DEFAULT_IDLE_TIMEOUT_MS, { min: 0, integer: false });
  const queueLimit = numberOption(problems, options, 'queueLimit', 0, { min: 0, integer: true });
  const connectTimeout = numberOption(problems, options, 'connectTimeout', DEFAULT_CONNECT_TIMEOUT_MS, { min: 0, integer: false });
  if (options.connectTimeout !== undefined && connectTimeout === 0) {
    problems.push({ field: 'connectTimeout', problem: 'must be > 0 (0, no timeout in mysql2, could hang forever)' });
  }
  const waitForConnections = options.waitForConnections === undefined ? true : Boolean(options.waitForConnections);
  const mysqlReset = options.resetOnRelease === undefined ? undefined : Boolean(options.resetOnRelease);
  if (mysqlReset !== undefined && lp.resetOnRelease !== undefined && lp.resetOnRelease !== mysqlReset) {
    problems.push({ field: 'leasepool.resetOnRelease', problem: 'contradicts resetOnRelease' });
  }
  const endTimeoutMs = lp.endTimeoutMs ?? DEFAULT_END_TIMEOUT_MS;
  if (typeof endTimeoutMs !== 'number' || !Number.isFinite(endTimeoutMs) || endTimeoutMs < 0) {
    problems.push({ field: 'leasepool.endTimeoutMs', problem: 'must be a number of milliseconds >= 0' });
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const gracefulEnd = options.gracefulEnd === true;
  const settings: Settings = {
    waitForConnections,
    gracefulEnd,
    stringifyObjects: Boolean(options.stringifyObjects),
    timezone: normaliseTimezone(options.timezone),
    endTimeoutMs,
    trace: options.trace !== false,
    poolConfig: Object.freeze({ connectionLimit, maxIdle, idleTimeout, queueLimit, waitForConnections, resetOnRelease: mysqlReset ?? false }),
    queryDefaults: Object.freeze({ rowsAsArray: options.rowsAsArray, infileStreamFactory: options.infileStreamFactory, namedPlaceholders: options.namedPlaceholders }),
  };
  for (const key of POOL_KEYS) delete options[key];

  // The mysql2 adapter, plus hooks that turn connection life events into mysql2's pool events.
  const base = mysqlAdapter(options as MysqlConnectionConfig, lp.adapter ?? {});
  let facade: Pool | undefined;
  const adapter: Adapter<PromiseConnection> = {
    ...base,
    connect: (signal, events) =>
      base.connect(signal, events).then((conn) => {
        facade?.[NOTIFY]('connection', conn);
        return conn;
      }),
    onLease(conn) {
      (conn as Marked)[LEASED] = true;
      facade?.[NOTIFY]('acquire', conn);
    },
    onIdle(conn) {
      // Also called for a connection that goes back unused (an acquire that gave up): not a release.
      if ((conn as Marked)[LEASED] !== true) return;
      (conn as Marked)[LEASED] = false;
      facade?.[NOTIFY]('release', conn);
    },
  };
  const core = createLeasepool(adapter, {
    ...(lp.name !== undefined ? { name: lp.name } : {}),
    max: connectionLimit,
    min: 0,
    maxWaiting: waitForConnections ? (queueLimit === 0 ? Infinity : queueLimit) : 0,
    // mysql2 closes idle connections only when maxIdle < connectionLimit (its reaper is not started otherwise).
    idleTimeoutMs: maxIdle < connectionLimit ? Math.max(1, idleTimeout) : Infinity,
    connectTimeoutMs: connectTimeout,
    acquireTimeoutMs: lp.acquireTimeoutMs ?? Infinity,
    maxLifetimeMs: lp.maxLifetimeMs ?? Infinity,
    maxUses: lp.maxUses ?? Infinity,
    ...(lp.leakDetectionMs !== undefined ? { leakDetectionMs: lp.leakDetectionMs } : {}),
      ...(lp.leakStacksPerSecond !== undefined ? { leakStacksPerSecond: lp.leakStacksPerSecond } : {}),
    leaseTimeoutMs: lp.leaseTimeoutMs,
    resetOnRelease: lp.resetOnRelease ?? mysqlReset ?? false,
    metrics: lp.metrics ?? false,
    ...(lp.logger !== undefined ? { logger: lp.logger } : {}),
    ...(lp.openTelemetry !== undefined ? { openTelemetry: lp.openTelemetry } : {}),
  });
  facade = new Pool(core, settings);
  return facade;
}
