/**
 * The leasepool adapter for `mysql2` (promise connections), MySQL and MariaDB.
 *
 * ```ts
 * import { createPool } from 'leasepool';
 * import { mysqlAdapter } from 'leasepool/adapters/mysql2';
 * const pool = createPool(mysqlAdapter({ host: '127.0.0.1', user: 'app', database: 'shop' }), { max: 10 });
 * ```
 *
 * Things this adapter does that a bare `mysql2` connection does not:
 * - one deadline (the core's `AbortSignal`) covers DNS, TCP, TLS and the handshake; a connection that
 *   completes after the abort is destroyed, never returned;
 * - an `'error'` listener sits on the connection from birth, so an idle connection killed by the
 *   server (`KILL`, shutdown, `wait_timeout`) is reported to the pool instead of crashing the process;
 * - the transaction status is known without an extra round trip: every OK packet carries the server
 *   status flags (`SERVER_STATUS_IN_TRANS`), and statements typed by hand are recognised
 *   (`START TRANSACTION`, `COMMIT`, DDL that commits implicitly …); when unsure it says `'unknown'`
 *   and the pool rolls back;
 * - connect errors are `ConnectError`s naming `host:port/database` only; their cause is a redacted copy.
 */
import type { Connection, ConnectionOptions } from 'mysql2/promise';
import type { Adapter, BeginOptions, CallerStack, ConnectionEvents, TxStatus } from '../../src/adapter';
import { ConfigError, ConnectError } from '../../src/errors';
import { unknownOption } from '../../src/options';
import { applyCallerStack, controlsTransactionText, statementEffect, statementInfo } from './statements';
import { states, sqlOf, noteSession, markSession, noteSent, noteResult, noteSessionReset, driverBusy, isDead } from './state';
import { sessionMarked } from '../../src/session-mark';
import { resolveConfig, checkPositive, withPassword, type MysqlConnectionConfig } from './config';
import { fetchPassword } from '../../src/credentials';
import { mysqlSessionRole } from './cluster';
import { SERVER_ROLLBACK_ERRNOS, someInChain, isFatalError, isRetryableError } from './errors';
import { validateBeginOptions, mysqlDialect } from './dialect';
import { hardDestroy, NO_EVENTS, openConnection, closeConnection } from './connect';

/** Options of the adapter itself (the driver's own options go in the first argument). */
export interface MysqlAdapterOptions {
  /**
   * Also treat errno 1205 (`ER_LOCK_WAIT_TIMEOUT`) as retryable. Off by default: MySQL rolls back
   * only the waiting *statement* on a lock wait timeout (unless `innodb_rollback_on_timeout`), so
   * the error is often better handled by the caller; `withTx` rolls back the whole transaction
   * before a retry, which makes retrying safe when you want it. Deadlocks (1213) are always retryable.
   */
  readonly retryOnLockWaitTimeout?: boolean | undefined;
  /**
   * How long `close()` waits for a graceful `COM_QUIT` (queued behind any running statement) and the
   * server closing the socket, before destroying the socket. Default 1000 ms.
   */
  readonly closeTimeoutMs?: number | undefined;
  /**
   * Upper bound on `cancel()`: opening the side connection that sends `KILL QUERY <id>`, sending it,
   * and closing it. Default 2000 ms. `cancel()` never throws; past this bound it gives up.
   */
  readonly cancelTimeoutMs?: number | undefined;
}

/**
 * The mysql2 adapter: the `Adapter` interface plus the hooks this adapter adds.
 * Assignable to `Adapter<Connection>`.
 */
export interface MysqlAdapter extends Adapter<Connection, Connection['query']> {
  /**
   * Reject transaction options MySQL cannot honour, before any statement is sent: `deferrable: true`
   * (a PostgreSQL-only mode) and isolation levels outside the fixed table throw `ConfigError`.
   * `sql.begin` runs the same check, so a core that does not call this hook is still safe
   * (`Adapter.validateBegin`).
   */
  validateBegin(opts: BeginOptions): void;
  /**
   * Methods of the promise connection that send statements (the guard should pass these calls to
   * `observeStatement` / `observeResult`): `Adapter.statementMethods`.
   */
  readonly statementMethods: readonly string[];
}

export const OPTION_KEYS: ReadonlySet<string> = new Set(['retryOnLockWaitTimeout', 'closeTimeoutMs', 'cancelTimeoutMs']);

export const DEFAULT_CLOSE_TIMEOUT_MS = 1_000;
export const DEFAULT_CANCEL_TIMEOUT_MS = 2_000;

/** Methods of a mysql2 promise connection that talk to the server. */
export const STATEMENT_METHODS = [
  'query',
  'execute',
  'beginTransaction',
  'commit',
  'rollback',
  'ping',
  'reset',
  'changeUser',
  'prepare',
] as const;

/**
 * Create the adapter for `mysql2/promise` connections.
 *
 * @param config mysql2 connection options, or a `mysql://user:password@host:port/database` URL.
 *   `connectTimeout` is left to the pool (`connectTimeoutMs`) unless you set it here.
 * @param options adapter options, see {@link MysqlAdapterOptions}.
 * @throws ConfigError for an unparseable URL or invalid adapter options (the message never
 *   contains the URL).
 */
export function mysqlAdapter(config: MysqlConnectionConfig | ConnectionOptions | string, options: MysqlAdapterOptions = {}): MysqlAdapter {
  const problems: { field: string; problem: string }[] = [];
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) problems.push({ field: key, problem: unknownOption(key, OPTION_KEYS, 'an option of mysqlAdapter') });
  }
  checkPositive(problems, 'closeTimeoutMs', options.closeTimeoutMs);
  checkPositive(problems, 'cancelTimeoutMs', options.cancelTimeoutMs);
  if (options.retryOnLockWaitTimeout !== undefined && typeof options.retryOnLockWaitTimeout !== 'boolean') {
    problems.push({ field: 'retryOnLockWaitTimeout', problem: 'must be a boolean' });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const resolved = resolveConfig(config);
  const closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
  const cancelTimeoutMs = options.cancelTimeoutMs ?? DEFAULT_CANCEL_TIMEOUT_MS;
  const retryOnLockWaitTimeout = options.retryOnLockWaitTimeout === true;

  /** The server's `innodb_rollback_on_timeout` (read-only while it runs), once known. */
  let rollbackOnTimeout: boolean | undefined;
  const learnRollbackOnTimeout = (conn: Connection, signal: AbortSignal): Promise<Connection> => {
    const core = states.get(conn)?.core;
    if (core === undefined) return Promise.resolve(conn);
    return new Promise<Connection>((resolve, reject) => {
      const onAbort = (): void => {
        hardDestroy(core);
        reject(new ConnectError(`mysql2: connecting to ${resolved.target} was aborted`, { cause: signal.reason }));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      core.query('SELECT @@innodb_rollback_on_timeout AS r', (err: unknown, rows: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) return;
        const row = Array.isArray(rows) ? (rows[0] as { r?: unknown } | undefined) : undefined;
        // Not InnoDB, or not readable: assume the whole transaction may be rolled back.
        rollbackOnTimeout ??= err ? true : Number(row?.r) === 1;
        resolve(conn);
      });
    });
  };

  const observe = (conn: Connection, method: string, firstArg: unknown): void => {
    const state = states.get(conn);
    if (state === undefined) return;
    switch (method) {
      case 'query':
      case 'execute': {
        const sql = sqlOf(firstArg);
        if (sql === undefined) {
          noteSent(state, 'unknown');
          return;
        }
        const info = statementInfo(sql, state.core.config.multipleStatements === true);
        if (info.session !== 'none') noteSession(state, info.session);
        noteSent(state, info.effect);
        return;
      }
      case 'beginTransaction':
        noteSent(state, 'begin');
        return;
      case 'commit':
      case 'rollback':
        noteSent(state, 'end');
        return;
      case 'changeUser':
        state.sessionChanged = true; // another user's session: not what the next borrower expects
        markSession(state);
        noteSent(state, 'unknown');
        return;
      case 'reset':
        noteSent(state, 'unknown');
        return;
      case 'prepare': {
        // The statement object runs later, out of our sight (and may outlive the lease): if it may
        // touch the transaction state, stay unsure until a session reset drops it server-side.
        const sql = sqlOf(firstArg);
        if (sql === undefined || statementEffect(sql, false) !== 'none') state.opaque = true;
        return;
      }
      default:
        return; // ping, escape, format …: no effect
    }
  };

  const observeOutcome = (conn: Connection, method: string, result: unknown): void => {
    const state = states.get(conn);
    if (state === undefined) return;
    switch (method) {
      case 'query':
      case 'execute':
      case 'beginTransaction':
      case 'commit':
      case 'rollback':
        noteResult(state, result);
        return;
      case 'reset':
      case 'changeUser':
        noteSessionReset(state);
        return;
      default:
        return;
    }
  };

  /** Open a connection, with a freshly fetched password when `password` is a function. */
  const open = (signal: AbortSignal, events: ConnectionEvents): Promise<Connection> => {
    const fn = resolved.passwordFn;
    if (fn === undefined) return openConnection(resolved, signal, events);
    return fetchPassword(fn, signal, 'mysql2', resolved.target, resolved.secrets).then((password) =>
      openConnection(withPassword(resolved, password), signal, events),
    );
  };

  return {
    name: 'mysql2',
    sessionRole: mysqlSessionRole,
    refConnection(conn: Connection, ref: boolean): void {
      const stream = states.get(conn)?.core.stream;
      if (ref) stream?.ref?.();
      else stream?.unref?.();
    },
    queryFunction: (conn: Connection): Connection['query'] =>
      ((...args: Parameters<Connection['query']>) => conn.query(...args)) as Connection['query'],
    target: resolved.target,
    server: resolved.server,
    sql: mysqlDialect,
    statementMethods: STATEMENT_METHODS,
    validateBegin: validateBeginOptions,
    // `await using conn` on a promise connection (mysql2 implements Symbol.asyncDispose as end()) ends the lease.
    lifecycleMethods: { release: ['release', Symbol.asyncDispose], destroy: ['end', 'destroy', 'close'] },

    connect(signal: AbortSignal, events: ConnectionEvents): Promise<Connection> {
      const opening = open(signal, events);
      return rollbackOnTimeout !== undefined ? opening : opening.then((conn) => learnRollbackOnTimeout(conn, signal));
    },

    close(conn: Connection): Promise<void> {
      return closeConnection(conn, closeTimeoutMs);
    },

    async validate(conn: Connection): Promise<void> {
      // `DO 0` is as cheap as a ping and its OK packet refreshes the transaction status.
      const result: unknown = await conn.query('DO 0');
      const state = states.get(conn);
      if (state !== undefined) noteResult(state, result);
    },

    exec(conn: Connection, sql: string): Promise<void> {
      const state = states.get(conn);
      if (state === undefined) return conn.query(sql).then(ignoreResult);
      noteSent(state, statementEffect(sql, state.core.config.multipleStatements === true));
      // The pool's own control statements (START TRANSACTION, COMMIT, ROLLBACK, savepoints) go
      // through the driver's callback API: the promise API would capture a stack for `trace` at
      // each of them, deep inside leasepool where it tells nobody anything (bench scenario: mysql-tx).
      return new Promise<void>((resolve, reject) => {
        state.core.query(sql, (err: unknown, result: unknown) => {
          if (err) return reject(err);
          noteResult(state, result);
          resolve();
        });
      });
    },

    backendId(conn: Connection): number | undefined {
      const threadId = states.get(conn)?.core.threadId ?? conn.threadId;
      return typeof threadId === 'number' ? threadId : undefined;
    },

    txStatus(conn: Connection): TxStatus {
      const state = states.get(conn);
      if (state === undefined || state.broken || state.opaque || isDead(state.core)) return 'unknown';
      if (driverBusy(state.core)) return 'unknown';
      return state.status;
    },

    isFatal: isFatalError,

    isRetryable(err: unknown): boolean {
      return isRetryableError(err, retryOnLockWaitTimeout);
    },

    endsTransaction(err: unknown): boolean {
      return someInChain(err, (e) => {
        if (typeof e.errno !== 'number') return false;
        if (SERVER_ROLLBACK_ERRNOS.has(e.errno)) return true;
        // A lock wait timeout rolls back only the statement, unless the server rolls back the
        // whole transaction on it (read at the first connect; unknown counts as yes).
        return e.errno === 1205 && rollbackOnTimeout !== false;
      });
    },

    controlsTransaction(conn: Connection, method: string, firstArg: unknown): boolean {
      switch (method) {
        case 'query':
        case 'execute': {
          const sql = sqlOf(firstArg);
          // START TRANSACTION / BEGIN commit the open transaction first; COMMIT, ROLLBACK end it.
          return sql !== undefined && controlsTransactionText(sql, states.get(conn)?.core.config.multipleStatements === true);
        }
        case 'beginTransaction':
        case 'commit':
        case 'rollback':
        case 'reset': // COM_RESET_CONNECTION rolls the transaction back
        case 'changeUser':
          return true;
        default:
          return false;
      }
    },

    sessionChanged(conn: Connection): boolean {
      return sessionMarked(conn);
    },

    async cancel(conn: Connection): Promise<void> {
      const threadId = states.get(conn)?.core.threadId ?? conn.threadId;
      if (typeof threadId !== 'number' || !Number.isSafeInteger(threadId) || threadId <= 0) return;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(new Error(`cancel timed out after ${cancelTimeoutMs} ms`)), cancelTimeoutMs);
      const aborted = new Promise<void>((resolve) => controller.signal.addEventListener('abort', () => resolve(), { once: true }));
      let killer: Connection | undefined;
      try {
        killer = await open(controller.signal, NO_EVENTS);
        await Promise.race([killer.query(`KILL QUERY ${threadId}`), aborted]);
      } catch {
        // Best effort: the pool destroys the connection anyway when a cancel does not land.
      } finally {
        clearTimeout(timer);
        controller.abort();
        if (killer !== undefined) await closeConnection(killer, Math.min(closeTimeoutMs, cancelTimeoutMs));
      }
    },

    async reset(conn: Connection): Promise<void> {
      const state = states.get(conn);
      if (state !== undefined) state.status = 'unknown';
      try {
        // COM_RESET_CONNECTION (MySQL 5.7.3+, MariaDB 10.2.4+): rolls back, drops temporary tables,
        // user variables, prepared statements, resets session variables; keeps the login and charset.
        if (typeof conn.reset === 'function') await conn.reset();
        else await conn.changeUser({}); // mysql2 without reset(): COM_CHANGE_USER, same login
      } catch (err) {
        if (state !== undefined) state.broken = true;
        throw err;
      }
      if (state !== undefined) noteSessionReset(state);
    },

    observeStatement: observe,
    observeResult: observeOutcome,
    guardResult: guardPrepared,
    sendStatement,
    traceStatement,
  };
}

/**
 * `lease.conn.query()` / `.execute()` in promise form, sent on the driver's callback API: what
 * mysql2's promise connection does, minus its promise and its stack capture deep inside the
 * scope. With `trace` (mysql2's default) the guard has captured the caller's stack in the
 * function the user called (see `traceStatement`); it goes on a failed statement's error as
 * mysql2 would put its own.
 */
export function sendStatement(
  conn: Connection,
  method: string,
  args: readonly unknown[],
  callerStack: CallerStack | undefined,
  onEnd: (err: unknown, result: unknown) => void,
): Promise<unknown> | undefined {
  if (method !== 'query' && method !== 'execute') return undefined;
  const core = states.get(conn)?.core;
  if (core === undefined) return undefined;
  const sql = args[0];
  const values = args[1];
  return new Promise((resolve, reject) => {
    const done = (err: unknown, rows: unknown, fields: unknown): void => {
      if (err) {
        onEnd(err, undefined);
        applyCallerStack(err, callerStack);
        reject(err);
        return;
      }
      const result = [rows, fields];
      onEnd(undefined, result);
      resolve(result);
    };
    if (values !== undefined) core[method](sql, values, done);
    else core[method](sql, done);
  });
}

/**
 * A prepared statement from `lease.conn.prepare()` runs on the driver's connection directly, out of
 * the guard's sight: kept past its lease (or run after its transaction was lost) it would run in
 * autocommit, or in another borrower's transaction. Its `execute` goes through `lease.conn` instead
 * (mysql2 finds the statement it prepared in its cache by text), so it is tracked and refused like
 * any other statement.
 */
export function guardPrepared(_conn: Connection, method: string, result: unknown, guarded: Connection): unknown {
  if (method !== 'prepare' || result === null || typeof result !== 'object') return result;
  const sql = (result as { statement?: { query?: unknown } }).statement?.query;
  if (typeof sql !== 'string') return result;
  const execute = (params?: unknown[]): Promise<unknown> => {
    try {
      return (guarded.execute as (sql: string, values?: unknown[]) => Promise<unknown>).call(guarded, sql, params);
    } catch (err) {
      return Promise.reject(err);
    }
  };
  Object.defineProperty(result, 'execute', { value: execute, configurable: true, writable: true });
  return result;
}

/** mysql2's `trace` (default on): a statement sent by `sendStatement` carries its caller's stack. */
export function traceStatement(conn: Connection, method: string): boolean {
  if (method !== 'query' && method !== 'execute') return false;
  const core = states.get(conn)?.core;
  return core !== undefined && core.config.trace !== false;
}


/** `validateBegin` is also available without an adapter instance. */

export function ignoreResult(): void {}
