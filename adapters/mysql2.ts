/**
 * leasepool adapter for `mysql2` (promise connections), MySQL and MariaDB.
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
import { createConnection as createCoreConnection } from 'mysql2';
import type { Connection, ConnectionOptions } from 'mysql2/promise';

import type { Adapter, BeginOptions, CallerStack, ConnectionEvents, IsolationLevel, TxDialect, TxStatus } from '../src/adapter';
import { applyCallerStack, controlsTransactionText, statementEffect, statementInfo, type SessionEffect, type StatementEffect } from './mysql2-statements';
import { ConfigError, ConnectError } from '../src/errors';
import { unknownOption } from '../src/options';
import { redact, redactError } from '../src/redact';

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

// ---------------------------------------------------------------------------------------------
// Driver internals we rely on (mysql2 3.x, `lib/base/connection.js`). Kept in one place.

/** The core (callback) connection under a promise connection, with the internals we read. */
interface CoreConnection {
  threadId: number | null;
  readonly config: { multipleStatements?: boolean; trace?: boolean };
  readonly stream: {
    readonly destroyed: boolean;
    destroy(): void;
    once(event: 'close', listener: () => void): unknown;
    ref?(): unknown;
    unref?(): unknown;
  };
  /** Set when the connection hit a fatal error; every later command fails. */
  readonly _fatalError?: unknown;
  readonly _protocolError?: unknown;
  /** Set by `end()`/`destroy()`/`close()` and by a handshake error. */
  readonly _closing?: boolean;
  /** The command being executed and the queue behind it: non-empty means a statement is in flight. */
  readonly _command?: unknown;
  readonly _commands?: { readonly length: number };
  /** The server's initial handshake; `statusFlags` bit 2 is the server's autocommit default. */
  readonly _handshakePacket?: { readonly statusFlags?: number } | null;
  /** Fails the running and queued commands with `err`, emits it, closes. */
  _handleFatalError?(err: Error): void;
  /** The callback API: no promise, and no `trace` stack capture (the promise API's). */
  query(sql: unknown, ...rest: unknown[]): unknown;
  execute(sql: unknown, ...rest: unknown[]): unknown;
  on(event: 'error', listener: (err: unknown) => void): unknown;
  once(event: 'connect', listener: () => void): unknown;
  destroy(): void;
  promise(): Connection;
}

const OPTION_KEYS: ReadonlySet<string> = new Set(['retryOnLockWaitTimeout', 'closeTimeoutMs', 'cancelTimeoutMs']);

/**
 * Errors with which the server has rolled back the whole transaction, not just the statement:
 * 1213 ER_LOCK_DEADLOCK, 1614 ER_XA_RBDEADLOCK, 3101 ER_TRANSACTION_ROLLBACK_DURING_COMMIT.
 */
const SERVER_ROLLBACK_ERRNOS: ReadonlySet<number> = new Set([1213, 1614, 3101]);

const SERVER_STATUS_IN_TRANS = 0x0001;
const SERVER_STATUS_AUTOCOMMIT = 0x0002;

const DEFAULT_CLOSE_TIMEOUT_MS = 1_000;
const DEFAULT_CANCEL_TIMEOUT_MS = 2_000;

// ---------------------------------------------------------------------------------------------
// Per-connection state, keyed by the promise connection the pool holds.

interface ConnState {
  readonly core: CoreConnection;
  /** Transaction status as last established (OK packet or recognised statement). */
  status: 'idle' | 'in_tx' | 'unknown';
  /** Session autocommit as last reported by the server; `undefined` when unknown. */
  autocommit: boolean | undefined;
  /** The server's autocommit default (initial handshake); restored by `reset`. */
  readonly defaultAutocommit: boolean | undefined;
  /** A prepared statement that may change the transaction state was handed to the user. */
  opaque: boolean;
  /**
   * A statement sent through the lease changed session state the next borrower would inherit
   * (`LOCK TABLES`, `GET_LOCK()`, a temporary table, `USE`, a session variable …).
   */
  sessionChanged: boolean;
  /** `SET TRANSACTION …` (without SESSION/GLOBAL) is waiting for the next transaction to consume it. */
  pendingTxCharacteristics: boolean;
  /** The promise connection the pool holds: carries the summary mark read at every release. */
  readonly promise: object;
  /** An `'error'` was emitted, or `close` was called: the connection is unusable. */
  broken: boolean;
  /** `events.onError` has been called (once per connection: the first error is the root cause). */
  reported: boolean;
}

const states = new WeakMap<object, ConnState>();
const stateOfCore = new WeakMap<CoreConnection, ConnState>();

/** The SQL text of a `query`/`execute` first argument: a string or a `{ sql }` options object. */
function sqlOf(firstArg: unknown): string | undefined {
  if (typeof firstArg === 'string') return firstArg;
  if (firstArg !== null && typeof firstArg === 'object') {
    const sql = (firstArg as { sql?: unknown }).sql;
    if (typeof sql === 'string') return sql;
  }
  return undefined;
}

/** A mysql2 `ResultSetHeader` (the OK packet of a statement): carries `serverStatus`. */
function isHeader(value: unknown): value is { serverStatus: number } {
  return (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    typeof (value as { serverStatus?: unknown }).serverStatus === 'number' &&
    'affectedRows' in value
  );
}

/**
 * The OK packet that describes the state after a call: `[header, fields]` for one statement,
 * `[[…, header], fields]` for several statements or a `CALL`; a bare header is accepted too.
 * `undefined` when the call ended with a result set (no status flags exposed by mysql2).
 */
function finalHeader(result: unknown): { serverStatus: number } | undefined {
  if (isHeader(result)) return result;
  if (!Array.isArray(result)) return undefined;
  const first: unknown = result[0];
  if (isHeader(first)) return first;
  if (Array.isArray(first) && first.length > 0) {
    const last: unknown = first[first.length - 1];
    if (isHeader(last)) return last;
  }
  return undefined;
}

/** Record a statement's session effect (see `classifySession`). */
function noteSession(state: ConnState, session: SessionEffect): void {
  if (session === 'session') state.sessionChanged = true;
  else if (session === 'next_tx') state.pendingTxCharacteristics = true;
  markSession(state);
}

/** Set on a promise connection whose session the next borrower must not inherit (read at every release). */
const SESSION_CHANGED = Symbol('leasepool.sessionChanged');
interface SessionMark {
  [SESSION_CHANGED]?: boolean;
}

/** Keep the connection's mark in step with its state (a property read at release, not a WeakMap lookup). */
function markSession(state: ConnState): void {
  (state.promise as SessionMark)[SESSION_CHANGED] =
    state.sessionChanged ||
    state.pendingTxCharacteristics ||
    (state.autocommit !== undefined && state.defaultAutocommit !== undefined && state.autocommit !== state.defaultAutocommit);
}

/** Record a statement about to be sent. Effects that end a transaction wait for the server's word. */
function noteSent(state: ConnState, effect: StatementEffect): void {
  switch (effect) {
    case 'begin':
      state.status = 'in_tx';
      if (state.pendingTxCharacteristics) {
        state.pendingTxCharacteristics = false;
        markSession(state);
      }
      return;
    case 'none':
      // With autocommit off, any statement may open a transaction.
      if (state.autocommit === false) state.status = 'in_tx';
      else if (state.autocommit === undefined) state.status = 'unknown';
      return;
    default:
      // 'end', 'implicit_commit', 'unknown': if it fails we cannot tell what happened; its OK
      // packet (always sent on success) settles it.
      state.status = 'unknown';
  }
}

/** Record a successful result. An OK packet is authoritative; a result set changes nothing. */
function noteResult(state: ConnState, result: unknown): void {
  const header = finalHeader(result);
  if (header !== undefined) {
    state.status = (header.serverStatus & SERVER_STATUS_IN_TRANS) !== 0 ? 'in_tx' : 'idle';
    const autocommit = (header.serverStatus & SERVER_STATUS_AUTOCOMMIT) !== 0;
    if (autocommit !== state.autocommit) {
      state.autocommit = autocommit;
      markSession(state);
    }
    return;
  }
  // A result set (SELECT, SHOW …): no status flags. With autocommit off it may have opened a transaction.
  if (state.autocommit === false && state.status === 'idle') state.status = 'in_tx';
}

/** After COM_RESET_CONNECTION / COM_CHANGE_USER: no transaction, session defaults. */
function noteSessionReset(state: ConnState): void {
  state.status = 'idle';
  state.autocommit = state.defaultAutocommit;
  state.opaque = false;
  state.sessionChanged = false;
  state.pendingTxCharacteristics = false;
  markSession(state);
}

function driverBusy(core: CoreConnection): boolean {
  return (core._command !== undefined && core._command !== null) || (core._commands?.length ?? 0) > 0;
}

function isDead(core: CoreConnection): boolean {
  return Boolean(core._fatalError) || Boolean(core._protocolError) || Boolean(core._closing) || core.stream.destroyed;
}

/**
 * Destroy the socket now. Idempotent; never throws. mysql2's own `destroy()` leaves the statements
 * in flight unsettled forever (it marks the connection closing, which mutes the close handler), so
 * they are failed first with a fatal `PROTOCOL_CONNECTION_LOST` error.
 */
function hardDestroy(core: CoreConnection | undefined): void {
  if (core === undefined) return;
  const state = stateOfCore.get(core);
  if (state !== undefined) {
    state.broken = true;
    state.reported = true; // our own decision: nothing to report
  }
  if (state !== undefined && driverBusy(core) && !core._fatalError && typeof core._handleFatalError === 'function') {
    const err = Object.assign(new Error('Connection lost: closed by leasepool while a statement was running'), {
      code: 'PROTOCOL_CONNECTION_LOST',
      fatal: true,
    });
    try {
      core._handleFatalError(err);
    } catch {
      // a throwing user callback: the socket is destroyed below anyway
    }
  }
  try {
    if (!core.stream.destroyed) core.destroy();
  } catch {
    // already closed
  }
  try {
    core.stream.destroy();
  } catch {
    // already destroyed
  }
}

/** Resolve after `ms` (timer cleared by the returned `cancel`), to race a promise against. */
function delay(ms: number): { promise: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

// ---------------------------------------------------------------------------------------------
// Configuration.

interface Resolved {
  /** Options given to mysql2 for each new connection (a fresh copy each time: mysql2 mutates it). */
  readonly driverOptions: () => ConnectionOptions;
  readonly target: string;
  readonly secrets: readonly string[];
}

function parseUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function resolveConfig(config: ConnectionOptions | string): Resolved {
  const base: ConnectionOptions = typeof config === 'string' ? { uri: config } : { ...config };
  const uri = typeof base.uri === 'string' ? parseUrl(base.uri) : undefined;
  if (typeof base.uri === 'string' && uri === undefined) {
    // Never echo the URL: it may carry the password.
    throw new ConfigError([{ field: typeof config === 'string' ? 'config' : 'config.uri', problem: 'is not a valid mysql:// URL' }]);
  }
  if (uri !== undefined && uri.protocol !== 'mysql:' && uri.protocol !== 'mariadb:') {
    const hint = uri.protocol === 'postgres:' || uri.protocol === 'postgresql:' ? ' (a PostgreSQL URL: use pgAdapter from leasepool/adapters/pg)' : '';
    throw new ConfigError([{ field: typeof config === 'string' ? 'config' : 'config.uri', problem: `must be a mysql:// URL, not ${uri.protocol}//${hint}` }]);
  }
  const secrets = new Set<string>();
  for (const value of [base.password, base.password1, base.password2, base.password3, base.passwordSha1]) {
    if (typeof value === 'string' && value.length > 0) secrets.add(value);
  }
  if (uri !== undefined && uri.password.length > 0) {
    secrets.add(uri.password);
    secrets.add(decode(uri.password));
  }
  // Longest first, so a secret containing another is masked whole.
  const secretList = [...secrets].sort((a, b) => b.length - a.length);

  // mysql2: explicit options win over the URI's.
  const uriHost = uri === undefined ? '' : decode(uri.hostname.startsWith('[') ? uri.hostname.slice(1, -1) : uri.hostname);
  const host = base.host || uriHost || 'localhost';
  const port = base.port || (uri !== undefined && uri.port !== '' ? Number(uri.port) : 3306);
  const database = base.database || (uri === undefined ? '' : decode(uri.pathname.slice(1)));
  const where = base.socketPath !== undefined ? `unix:${base.socketPath}` : `${host}:${port}`;
  const target = redact(`${where}/${database}`, secretList);

  // The pool's AbortSignal is the connect deadline; mysql2's own (10 s default) would cut a longer
  // `connectTimeoutMs` short, so it is turned off unless the caller set it.
  const connectTimeoutSet = base.connectTimeout !== undefined || uri?.searchParams.has('connectTimeout') === true;
  const frozen: ConnectionOptions = connectTimeoutSet ? base : { ...base, connectTimeout: 0 };
  return { driverOptions: () => ({ ...frozen }), target, secrets: secretList };
}

function checkPositive(problems: { field: string; problem: string }[], field: string, value: unknown): void {
  if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value > 0)) {
    problems.push({ field, problem: 'must be a positive number of milliseconds' });
  }
}

// ---------------------------------------------------------------------------------------------
// Errors.

const FATAL_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'PROTOCOL_PACKETS_OUT_OF_ORDER',
  'PROTOCOL_UNEXPECTED_PACKET',
  'PROTOCOL_ENQUEUE_AFTER_QUIT',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_DESTROYED',
  'ERR_SOCKET_CLOSED',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
  'ER_CON_COUNT_ERROR',
  'ER_CLIENT_INTERACTION_TIMEOUT',
  'ER_NET_READ_ERROR',
  'ER_NET_READ_INTERRUPTED',
  'ER_NET_ERROR_ON_WRITE',
  'ER_NET_WRITE_INTERRUPTED',
  'ER_NET_PACKETS_OUT_OF_ORDER',
  'ER_NET_PACKET_TOO_LARGE',
]);

const FATAL_ERRNOS = new Set([
  1040, // ER_CON_COUNT_ERROR (too many connections; at connect)
  1043, // ER_HANDSHAKE_ERROR
  1053, // ER_SERVER_SHUTDOWN
  1152, // ER_ABORTING_CONNECTION
  1153, // ER_NET_PACKET_TOO_LARGE (the server drops the connection)
  1156, // ER_NET_PACKETS_OUT_OF_ORDER
  1158, // ER_NET_READ_ERROR
  1159, // ER_NET_READ_INTERRUPTED
  1160, // ER_NET_ERROR_ON_WRITE
  1161, // ER_NET_WRITE_INTERRUPTED
  1927, // ER_CONNECTION_KILLED (MariaDB)
  2006, // CR_SERVER_GONE_ERROR
  2013, // CR_SERVER_LOST
  4031, // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8.0.24+)
]);

const FATAL_MESSAGES = [
  "Can't add new command when connection is in closed state",
  "Can't write in closed state",
  'Connection lost',
];

function errorFields(err: unknown): { code?: unknown; errno?: unknown; fatal?: unknown; message?: unknown; cause?: unknown } {
  return err !== null && typeof err === 'object' ? (err as Record<string, unknown>) : {};
}

/** Walk `err` and its `cause` chain (a few levels), stopping at the first match. */
function someInChain(err: unknown, test: (e: ReturnType<typeof errorFields>) => boolean): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current !== null && typeof current === 'object'; depth++) {
    const fields = errorFields(current);
    if (test(fields)) return true;
    current = fields.cause;
  }
  return false;
}

function isFatalError(err: unknown): boolean {
  return someInChain(err, (e) => {
    if (e.fatal === true) return true;
    if (typeof e.code === 'string' && FATAL_CODES.has(e.code)) return true;
    if (typeof e.errno === 'number' && FATAL_ERRNOS.has(e.errno)) return true;
    const message = e.message;
    return typeof message === 'string' && FATAL_MESSAGES.some((m) => message.startsWith(m));
  });
}

function isRetryableError(err: unknown, lockWaitTimeout: boolean): boolean {
  return someInChain(err, (e) => {
    if (e.errno === 1213 || e.code === 'ER_LOCK_DEADLOCK') return true;
    // MariaDB 11.8+ snapshot isolation: "Record has changed since last read" (a serialization failure).
    if (e.errno === 1020 || e.code === 'ER_CHECKREAD') return true;
    return lockWaitTimeout && (e.errno === 1205 || e.code === 'ER_LOCK_WAIT_TIMEOUT');
  });
}

/**
 * Node's own errors (socket errors) come from another realm under `vm` sandboxes such as jest, where
 * `err instanceof Error` is false and `redactError` would keep only the text. Rebuild such an
 * error-like object as a local `Error` with the same fields, so code/errno/syscall survive redaction.
 */
function localError(err: unknown): unknown {
  if (err instanceof Error || err === null || typeof err !== 'object') return err;
  const src = err as Record<string, unknown>;
  if (typeof src.message !== 'string') return err;
  const copy = new Error(src.message);
  if (typeof src.name === 'string') copy.name = src.name;
  if (typeof src.stack === 'string') copy.stack = src.stack;
  const dst = copy as unknown as Record<string, unknown>;
  for (const key of ['code', 'errno', 'sqlState', 'syscall', 'address', 'port']) {
    if (src[key] !== undefined) dst[key] = src[key];
  }
  return copy;
}

function describeCode(err: unknown): string {
  const { code, errno } = errorFields(err);
  if (typeof code === 'string' && code.length > 0) return ` (${code})`;
  if (typeof errno === 'number') return ` (errno ${errno})`;
  return '';
}

/** `: <the driver's or server's text> (<code>)`, redacted: what a connect failure says, as pg's does. */
function describeFailure(err: unknown, secrets: readonly string[]): string {
  const message = (err as { message?: unknown } | null)?.message;
  const text = typeof message === 'string' && message.length > 0 ? `: ${redact(message, secrets)}` : '';
  return `${text}${describeCode(err)}`;
}

// ---------------------------------------------------------------------------------------------
// Dialect.

const ISOLATION: Readonly<Record<IsolationLevel, string>> = {
  'read uncommitted': 'READ UNCOMMITTED',
  'read committed': 'READ COMMITTED',
  'repeatable read': 'REPEATABLE READ',
  serializable: 'SERIALIZABLE',
};

const SAVEPOINT_NAME = /^[a-z_][a-z0-9_]*$/;

function validateBeginOptions(opts: BeginOptions): void {
  const problems: { field: string; problem: string }[] = [];
  if (opts.deferrable === true) {
    problems.push({ field: 'deferrable', problem: 'is not supported by MySQL/MariaDB (PostgreSQL only)' });
  }
  const isolation: unknown = opts.isolation;
  // typeof first: an object key would be converted (and may throw) before the lookup.
  if (isolation !== undefined && !(typeof isolation === 'string' && Object.prototype.hasOwnProperty.call(ISOLATION, isolation))) {
    problems.push({ field: 'isolation', problem: `must be one of ${Object.keys(ISOLATION).join(', ')}` });
  }
  if (opts.readOnly !== undefined && typeof opts.readOnly !== 'boolean') {
    problems.push({ field: 'readOnly', problem: 'must be a boolean' });
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

function savepointName(name: string): string {
  if (!SAVEPOINT_NAME.test(name)) {
    throw new ConfigError([{ field: 'savepoint name', problem: 'must match /^[a-z_][a-z0-9_]*$/' }]);
  }
  return name;
}

/**
 * MySQL transaction control.
 * - `begin({ isolation })` sends `SET TRANSACTION ISOLATION LEVEL …` first (it applies to the next
 *   transaction only), then `START TRANSACTION`.
 * - `readOnly: true` → `START TRANSACTION READ ONLY`; `readOnly: false` → `START TRANSACTION READ WRITE`
 *   (explicit, so it overrides a session default of `transaction_read_only=1`); omitted → plain
 *   `START TRANSACTION` (the session default).
 * - `deferrable: true` → `ConfigError`; `deferrable: false` is accepted and means nothing in MySQL.
 */
export const mysqlDialect: TxDialect = {
  begin(opts: BeginOptions): readonly string[] {
    validateBeginOptions(opts);
    const statements: string[] = [];
    if (opts.isolation !== undefined) statements.push(`SET TRANSACTION ISOLATION LEVEL ${ISOLATION[opts.isolation]}`);
    if (opts.readOnly === true) statements.push('START TRANSACTION READ ONLY');
    else if (opts.readOnly === false) statements.push('START TRANSACTION READ WRITE');
    else statements.push('START TRANSACTION');
    return statements;
  },
  commit: 'COMMIT',
  rollback: 'ROLLBACK',
  savepoint: (name) => `SAVEPOINT ${savepointName(name)}`,
  releaseSavepoint: (name) => `RELEASE SAVEPOINT ${savepointName(name)}`,
  rollbackToSavepoint: (name) => `ROLLBACK TO SAVEPOINT ${savepointName(name)}`,
};

// ---------------------------------------------------------------------------------------------
// Connecting.

const NO_EVENTS: ConnectionEvents = { onError: () => undefined };

/**
 * Open one promise connection. The core connection gets its `'error'` listener before anything
 * can fail; errors after the handshake go to `events.onError` (once per connection).
 */
function openConnection(resolved: Resolved, signal: AbortSignal, events: ConnectionEvents): Promise<Connection> {
  const { target, secrets } = resolved;
  return new Promise<Connection>((resolve, reject) => {
    let settled = false;
    let core: CoreConnection | undefined;
    let state: ConnState | undefined;

    const fail = (message: string, cause: unknown): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      hardDestroy(core);
      reject(new ConnectError(message, { cause: cause === undefined ? undefined : redactError(localError(cause), secrets) }));
    };

    const onAbort = (): void => {
      const reason: unknown = signal.reason;
      const text = errorFields(reason).message; // duck-typed: the reason may come from another realm
      const why = typeof text === 'string' && text.length > 0 ? `: ${redact(text, secrets)}` : '';
      fail(`mysql2: connecting to ${target} was aborted${why}`, reason);
    };

    const onError = (err: unknown): void => {
      if (!settled) {
        fail(`mysql2: could not connect to ${target}${describeFailure(err, secrets)}`, err);
        return;
      }
      if (state === undefined) return; // failed connect: the rejection already told the story
      state.broken = true;
      if (state.reported) return;
      state.reported = true;
      try {
        events.onError(err);
      } catch {
        // A throwing listener must not turn a socket event into an uncaught exception.
      }
    };

    if (signal.aborted) {
      // Asynchronous like every other failure (generic-pool spins on synchronous rejections).
      setImmediate(onAbort);
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });

    try {
      core = createCoreConnection(resolved.driverOptions()) as unknown as CoreConnection;
    } catch (err) {
      // Bad options (e.g. a port out of range) throw synchronously inside mysql2.
      setImmediate(() => fail(`mysql2: could not connect to ${target}${describeFailure(err, secrets)}`, err));
      return;
    }
    const born = core;
    born.on('error', onError);
    born.once('connect', () => {
      if (settled || signal.aborted) {
        // Completed after the deadline: never handed out.
        if (!settled) onAbort();
        hardDestroy(born);
        return;
      }
      settled = true;
      signal.removeEventListener('abort', onAbort);
      const conn = born.promise();
      const flags = born._handshakePacket?.statusFlags;
      const defaultAutocommit = typeof flags === 'number' ? (flags & SERVER_STATUS_AUTOCOMMIT) !== 0 : undefined;
      state = {
        core: born,
        status: 'idle',
        autocommit: defaultAutocommit,
        defaultAutocommit,
        opaque: false,
        sessionChanged: false,
        pendingTxCharacteristics: false,
        promise: conn,
        broken: false,
        reported: false,
      };
      states.set(conn, state);
      markSession(state);
      stateOfCore.set(born, state);
      // The promise connection re-emits the core's errors once someone listens on it (a user's
      // listener on `lease.conn`); listening on both keeps either path from ever being unhandled.
      conn.on('error', onError);
      resolve(conn);
    });
  });
}

async function closeConnection(conn: Connection, closeTimeoutMs: number): Promise<void> {
  const state = states.get(conn);
  const core = state?.core ?? (conn as unknown as { connection?: CoreConnection }).connection;
  if (state !== undefined) state.broken = true;
  if (core === undefined) {
    try {
      conn.destroy();
    } catch {
      // nothing more to do
    }
    return;
  }
  if (isDead(core)) {
    hardDestroy(core);
    return;
  }
  const timer = delay(closeTimeoutMs);
  try {
    const socketClosed = new Promise<void>((resolve) => {
      if (core.stream.destroyed) resolve();
      else core.stream.once('close', resolve);
    });
    // `end()` queues COM_QUIT behind any running statement and resolves when it is written
    // (it never rejects); the server then closes the socket.
    const graceful = conn.end().then(() => socketClosed);
    await Promise.race([graceful, timer.promise]);
  } catch {
    // fall through to destroy
  } finally {
    timer.cancel();
    hardDestroy(core);
  }
}

// ---------------------------------------------------------------------------------------------
// The adapter.

/** Methods of a mysql2 promise connection that talk to the server. */
const STATEMENT_METHODS = [
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
export function mysqlAdapter(config: ConnectionOptions | string, options: MysqlAdapterOptions = {}): MysqlAdapter {
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

  return {
    name: 'mysql2',
    refConnection(conn: Connection, ref: boolean): void {
      const stream = states.get(conn)?.core.stream;
      if (ref) stream?.ref?.();
      else stream?.unref?.();
    },
    queryFunction: (conn: Connection): Connection['query'] =>
      ((...args: Parameters<Connection['query']>) => conn.query(...args)) as Connection['query'],
    target: resolved.target,
    sql: mysqlDialect,
    statementMethods: STATEMENT_METHODS,
    validateBegin: validateBeginOptions,
    // `await using conn` on a promise connection (mysql2 implements Symbol.asyncDispose as end()) ends the lease.
    lifecycleMethods: { release: ['release', Symbol.asyncDispose], destroy: ['end', 'destroy', 'close'] },

    connect(signal: AbortSignal, events: ConnectionEvents): Promise<Connection> {
      const opening = openConnection(resolved, signal, events);
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
      return (conn as SessionMark)[SESSION_CHANGED] === true;
    },

    async cancel(conn: Connection): Promise<void> {
      const threadId = states.get(conn)?.core.threadId ?? conn.threadId;
      if (typeof threadId !== 'number' || !Number.isSafeInteger(threadId) || threadId <= 0) return;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(new Error(`cancel timed out after ${cancelTimeoutMs} ms`)), cancelTimeoutMs);
      const aborted = new Promise<void>((resolve) => controller.signal.addEventListener('abort', () => resolve(), { once: true }));
      let killer: Connection | undefined;
      try {
        killer = await openConnection(resolved, controller.signal, NO_EVENTS);
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
function sendStatement(
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
function guardPrepared(_conn: Connection, method: string, result: unknown, guarded: Connection): unknown {
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
function traceStatement(conn: Connection, method: string): boolean {
  if (method !== 'query' && method !== 'execute') return false;
  const core = states.get(conn)?.core;
  return core !== undefined && core.config.trace !== false;
}


/** `validateBegin` is also available without an adapter instance. */
export { validateBeginOptions as validateMysqlBegin };

// ---------------------------------------------------------------------------------------------
// The drop-in for `mysql2/promise`'s `createPool` (see mysql2-pool.ts), and the mysql2 types code
// written against `mysql2/promise` imports, so that changing the import is the whole migration.

// mysql2-pool.ts also re-exports everything else `mysql2/promise` exports (createConnection, format,
// escape, escapeId, raw, Types, the types …). The default export is that module: what
// `import mysql from 'mysql2/promise'` gives, with createPool replaced.
export * from './mysql2-pool';
import * as mysql2Promise from './mysql2-pool';
export default mysql2Promise;

function ignoreResult(): void {}
