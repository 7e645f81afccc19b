/**
 * The callback-API pool under the drop-in promise pool: what mysql2's promise pool exposes as
 * `promisePool.pool`, for libraries that take a callback pool (Kysely's `MysqlDialect`: pass
 * `pool.pool`). It is a view of the same leasepool pool, not a second pool: the same connections,
 * the same limits, the same release path (a connection given back inside a transaction is rolled
 * back), the same leak detection.
 *
 * Its connections are mysql2's core (callback) connections behind a guard: one handle per pooled
 * connection (mysql2 hands out the same `PoolConnection` object each time, and libraries cache per
 * object), usable while checked out; any use while it sits released in the pool throws the lease's
 * `LeaseReleasedError`. Statements sent on it are tracked like those sent on a promise connection
 * (transaction status for the release path, fatal errors).
 */
import { EventEmitter } from 'node:events';
import * as coreDriver from 'mysql2';
import type { Connection as PromiseConnection, PoolConnection as PromisePoolConnection } from 'mysql2/promise';

import { noteSentStatement, statementEnded } from '../../src/guard';
import type { CallSite, Lease } from '../../src/lease';
import type { PoolStats } from '../../src/pool';

/** What the promise pool lends the callback pool (private to the two files). */
export interface CallbackPoolPort {
  /** Borrow a lease; rejections already carry mysql2's messages. */
  acquire(site: CallSite | undefined): Promise<Lease<PromiseConnection>>;
  captureSite(entry: Function): CallSite | undefined;
  /** The promise-API handle of a lease (a core connection's `promise()`). */
  wrapPromise(lease: Lease<PromiseConnection>): PromisePoolConnection;
  /** mysql2's `gracefulEnd`: `connection.end()` closes the connection instead of releasing it. */
  readonly gracefulEnd: boolean;
  /** The promise pool itself: `promise()`, `query`/`execute` (callback form on top), `end`, escaping. */
  readonly facade: FacadeLike;
  stats(): PoolStats;
  /** Connection options a command built by the pool takes (mysql2's `createQuery(…, connectionConfig)`). */
  readonly queryDefaults: Readonly<Record<string, unknown>>;
  /** Listen to the core's `enqueue`; returns the unsubscribe. */
  subscribeEnqueue(listener: () => void): () => void;
}

/** The promise pool's methods the callback pool forwards to. */
export interface FacadeLike {
  query(sql: unknown, values?: unknown): Promise<[unknown, unknown]>;
  execute(sql: unknown, values?: unknown): Promise<[unknown, unknown]>;
  end(): Promise<void>;
  escape(value: unknown): string;
  escapeId(value: string | string[]): string;
  format(sql: string, values?: unknown): string;
}

type AnyFn = (...args: unknown[]) => unknown;
type Callback = (err: unknown, ...rest: unknown[]) => unknown;

/** Core-connection methods that talk to the server: tracked like the promise connection's statements. */
const TRACKED: ReadonlySet<PropertyKey> = new Set(['query', 'execute', 'beginTransaction', 'commit', 'rollback', 'ping', 'reset', 'changeUser']);

/** The current lease of one pooled connection, for its callback handle. */
interface Slot {
  lease: Lease<PromiseConnection>;
  readonly handle: object;
}

function coreOf(conn: PromiseConnection): object {
  return (conn as unknown as { connection: object }).connection;
}

const noop = (): void => undefined;

/** mysql2's `createQuery(sql, values, callback, connectionConfig)` (exported, not in its typings): the command its pool.query returns. */
const createQuery = (coreDriver as unknown as { createQuery(sql: unknown, values: unknown, cb: undefined, config: unknown): EventEmitter }).createQuery;

/**
 * mysql2's `'warn'` on a pooled connection whose `end()` releases it (without `gracefulEnd`), with
 * mysql2's message. Emitted on the core connection, where mysql2 emits it.
 */
export function warnEndDeprecated(core: object): void {
  const err = new Error(
    'Calling conn.end() to release a pooled connection is deprecated. In next version calling conn.end() will be restored to default conn.end() behavior. Use conn.release() instead.',
  );
  try {
    (core as EventEmitter).emit('warn', err);
  } catch {
    // a throwing listener must not keep the connection from being released
  }
}

/** mysql2's core pool API on the leasepool pool (see the file comment). */
export class CallbackPool extends EventEmitter {
  readonly #port: CallbackPoolPort;
  readonly #slots = new WeakMap<PromiseConnection, Slot>();
  /** mysql2's `pool.config`: the pool's own settings (connection options stay with the driver). */
  readonly config: Readonly<Record<string, unknown>>;

  /** @internal created by the promise pool */
  constructor(port: CallbackPoolPort, config: Readonly<Record<string, unknown>>) {
    super();
    this.#port = port;
    this.config = config;
    // 'enqueue' comes from the core, only while someone listens here (the core does not emit it otherwise).
    const forward = (): void => void this.emit('enqueue');
    let unsubscribe: (() => void) | undefined;
    this.on('newListener', (event: string | symbol) => {
      if (event === 'enqueue' && this.listenerCount('enqueue') === 0) unsubscribe = port.subscribeEnqueue(forward);
    });
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'enqueue' && this.listenerCount('enqueue') === 0) {
        unsubscribe?.();
        unsubscribe = undefined;
      }
    });
  }

  // Read-only stand-ins for mysql2's private lists, for monitoring code that reads their length
  // (`pool.pool._allConnections.length` …): length only, no entries. `stats()` on the promise pool
  // is the documented way.
  /** @deprecated mysql2 internals: read `pool.stats().size`. Length only. */
  get _allConnections(): { readonly length: number } {
    return { length: this.#port.stats().size };
  }

  /** @deprecated mysql2 internals: read `pool.stats().idle`. Length only. */
  get _freeConnections(): { readonly length: number } {
    return { length: this.#port.stats().idle };
  }

  /** @deprecated mysql2 internals: read `pool.stats().pending`. Length only. */
  get _connectionQueue(): { readonly length: number } {
    return { length: this.#port.stats().pending };
  }

  /** @deprecated mysql2 internals: read `pool.stats().closed`. */
  get _closed(): boolean {
    return this.#port.stats().closed;
  }

  /** Borrow a connection: `callback(err, connection)`; give it back with `connection.release()`. */
  getConnection(callback: (err: unknown, connection?: unknown) => void): void {
    if (typeof callback !== 'function') throw new TypeError('pool.getConnection(callback) takes a callback');
    const site = this.#port.captureSite(this.getConnection);
    // Callbacks are called for their effect only: what they return (often a mysql2 Query, whose
    // `then` throws) must not become the value of a promise here.
    this.#port.acquire(site).then(
      (lease) => void callback(null, this.#handle(lease)),
      (err: unknown) => void callback(err),
    );
  }

  /** Same as `connection.release()`. */
  releaseConnection(connection: unknown): void {
    const release = (connection as { release?: unknown } | null)?.release;
    if (typeof release === 'function') (release as AnyFn).call(connection);
  }

  /**
   * `pool.query(sql, [values], callback)`: one statement on a pooled connection, `callback(err, rows,
   * fields)`. Without a callback it returns mysql2's `Query` command (events `result`, `fields`,
   * `end`, `error`; `.stream()`), as mysql2's pool does.
   */
  query(sql: unknown, values?: unknown, callback?: unknown): unknown {
    if (typeof values === 'function' || typeof callback === 'function' || (typeof sql === 'object' && sql !== null && typeof (sql as { onResult?: unknown }).onResult === 'function')) {
      return this.#statement('query', sql, values, callback);
    }
    return this.#command(sql, values);
  }

  /** `pool.execute(sql, [values], callback)`: a prepared statement on a pooled connection. */
  execute(sql: unknown, values?: unknown, callback?: unknown): void {
    this.#statement('execute', sql, values, callback);
  }

  /** mysql2's pool.query without a callback: the command now, sent once a connection is free. */
  #command(sql: unknown, values: unknown): unknown {
    const defaults = this.#port.queryDefaults;
    const command = createQuery(sql, values, undefined, defaults) as EventEmitter & { namedPlaceholders?: unknown };
    if (command.namedPlaceholders === undefined) command.namedPlaceholders = defaults.namedPlaceholders;
    this.getConnection((err, connection) => {
      if (err) {
        command.emit('error', err);
        return;
      }
      const conn = connection as { query(cmd: unknown): EventEmitter; release(): void };
      try {
        conn.query(command).once('end', () => conn.release());
      } catch (thrown) {
        conn.release();
        command.emit('error', thrown);
      }
    });
    return command;
  }

  /** End the pool (the promise pool's `end()`), then `callback(err)`. */
  end(callback?: (err: unknown) => void): void {
    this.#port.facade.end().then(
      () => void callback?.(null),
      (err: unknown) => void callback?.(err),
    );
  }

  /** `using pool = …` ends the pool (without waiting, as mysql2's does). */
  [Symbol.dispose](): void {
    this.end();
  }

  /** The promise pool this callback pool belongs to (mysql2's `pool.promise()`). */
  promise(): FacadeLike {
    return this.#port.facade;
  }

  escape(value: unknown): string {
    return this.#port.facade.escape(value);
  }

  escapeId(value: string | string[]): string {
    return this.#port.facade.escapeId(value);
  }

  format(sql: string, values?: unknown): string {
    return this.#port.facade.format(sql, values);
  }

  #statement(method: 'query' | 'execute', sql: unknown, values: unknown, callback: unknown): undefined {
    let cb = callback;
    let args = values;
    if (typeof args === 'function') {
      cb = args;
      args = undefined;
    }
    if (typeof cb !== 'function') {
      // mysql2 returns a Query event emitter here; the promise pool (`pool.promise()`) is the way without a callback.
      throw new TypeError(`pool.pool.${method}() needs a callback here; use the promise pool's ${method}() instead`);
    }
    const done = cb as Callback;
    this.#port.facade[method](sql, args).then(
      ([rows, fields]) => void done(null, rows, fields),
      (err: unknown) => void done(err),
    );
    return undefined;
  }

  /** The callback handle of the lease's connection: one per connection, pointed at its current lease. */
  #handle(lease: Lease<PromiseConnection>): object {
    const raw = lease.record.connection.raw;
    const slot = this.#slots.get(raw);
    if (slot !== undefined) {
      slot.lease = lease;
      return slot.handle;
    }
    const fresh: Slot = { lease, handle: {} };
    (fresh as { handle: object }).handle = coreHandle(fresh, raw, this.#port);
    this.#slots.set(raw, fresh);
    return fresh.handle;
  }
}

/** A guarded core connection (see the file comment). */
function coreHandle(slot: Slot, raw: PromiseConnection, port: CallbackPoolPort): object {
  const core = coreOf(raw);
  const active = (): Lease<PromiseConnection> | undefined => (slot.lease.state === 'active' ? slot.lease : undefined);
  // Touching the guarded connection of an ended lease throws its own error (released or revoked).
  const refuse = (): never => {
    void slot.lease.conn;
    throw new Error('lease is not active');
  };
  const release = (): void => {
    const lease = active();
    if (lease !== undefined) lease.release().catch(noop);
  };
  const destroy = (): void => {
    const lease = active();
    if (lease !== undefined) (lease.conn as unknown as { destroy(): Promise<void> }).destroy().catch(noop);
  };
  const end = (callback?: unknown): void => {
    if (port.gracefulEnd) destroy();
    else {
      if (active() !== undefined) warnEndDeprecated(core);
      release();
    }
    if (typeof callback === 'function') (callback as AnyFn)();
  };
  const methods = new Map<PropertyKey, AnyFn>();
  const tracked = (prop: string, method: AnyFn): AnyFn =>
    function statement(...args: unknown[]): unknown {
      const lease = active() ?? refuse();
      const record = lease.record;
      record.owner.adapter.observeStatement?.(raw, prop, args[0]);
      record.inflight++;
      noteSentStatement(record, args[0]);
      const last = args.length - 1;
      if (last >= 0 && typeof args[last] === 'function') {
        const callback = args[last] as Callback;
        let ended = false;
        args[last] = (err: unknown, ...rest: unknown[]) => {
          if (!ended) {
            ended = true;
            statementEnded(record, raw, prop, err, err ? undefined : rest[0]);
          }
          return callback(err, ...rest);
        };
        try {
          return method.apply(core, args);
        } catch (err) {
          if (!ended) {
            ended = true;
            statementEnded(record, raw, prop, err, undefined);
          }
          throw err;
        }
      }
      // No callback: mysql2 returns its command (an event emitter: `.stream()`, 'result', 'end').
      let command: unknown;
      try {
        command = method.apply(core, args);
      } catch (err) {
        statementEnded(record, raw, prop, err, undefined);
        throw err;
      }
      const emitter = command as { once?: AnyFn } | undefined;
      if (emitter === undefined || typeof emitter.once !== 'function') {
        statementEnded(record, raw, prop, undefined, undefined);
        return command;
      }
      // The last OK packet (a ResultSetHeader among the results) tells the transaction status.
      let lastResult: unknown;
      (emitter as unknown as EventEmitter).on('result', (result: unknown) => {
        lastResult = result;
      });
      emitter.once('end', () => statementEnded(record, raw, prop, undefined, lastResult));
      return command;
    };
  const handle: object = new Proxy(Object.create(null) as object, {
    get(_blank, prop) {
      switch (prop) {
        case 'release':
        case Symbol.dispose:
          return release;
        case 'destroy':
          return destroy;
        case 'end':
          return end;
        case 'then':
          return undefined;
        default:
          break;
      }
      const lease = active() ?? refuse();
      if (prop === 'promise') return () => port.wrapPromise(lease);
      const value: unknown = Reflect.get(core, prop, core);
      if (typeof value !== 'function') return value;
      let wrapped = methods.get(prop);
      if (wrapped === undefined) {
        const fn = value as AnyFn;
        wrapped = TRACKED.has(prop)
          ? tracked(prop as string, fn)
          : function forwarded(...args: unknown[]): unknown {
              if (active() === undefined) refuse();
              const result = fn.apply(core, args);
              // Chaining (`conn.on(…).on(…)`) stays on the handle, never on the bare connection.
              return result === core ? handle : result;
            };
        methods.set(prop, wrapped);
      }
      return wrapped;
    },
    set(_blank, prop, value) {
      if (active() === undefined) refuse();
      return Reflect.set(core, prop, value, core);
    },
    has(_blank, prop) {
      return Reflect.has(core, prop);
    },
    // A core PoolConnection, as mysql2's pool gives (`instanceof` holds; the methods are the connection's own).
    getPrototypeOf: () => coreDriver.PoolConnection.prototype,
  });
  return handle;
}
