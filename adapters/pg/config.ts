/**
 * Options of the pg adapter and the pg config they go with: validation (every bad field named),
 * the server settings sent in the startup packet, and the check that a connection string is a
 * postgres:// one.
 */
import { Client, type ClientConfig } from 'pg';
import { checkNonNegativeInt } from '../../src/dialects/postgres';
import { ConfigError } from '../../src/errors';
import { unknownOption } from '../../src/options';

/** Options of {@link pgAdapter}. Every field is optional; bad values throw `ConfigError` naming the field. */
export interface PgAdapterOptions {
  /**
   * Server-side `statement_timeout` in milliseconds, sent in the startup packet (never as a `SET`
   * after connect, so it also holds behind PgBouncer's session reuse and survives `DISCARD ALL`).
   * `0` disables the timeout explicitly (overriding a role or database default). Must not also be
   * set as `statement_timeout` in the pg config or the connection string.
   */
  statementTimeoutMs?: number | undefined;
  /**
   * Server-side `idle_in_transaction_session_timeout` in milliseconds (startup parameter): the
   * server ends a session left idle inside a transaction for longer. `0` disables it explicitly.
   */
  idleInTransactionSessionTimeoutMs?: number | undefined;
  /**
   * Server-side `lock_timeout` in milliseconds (startup parameter): a statement waiting longer for
   * a lock fails with SQLSTATE 55P03. `0` disables it explicitly.
   */
  lockTimeoutMs?: number | undefined;
  /**
   * How long `close` waits for a graceful `end()` before destroying the socket. Default 1000.
   * A dead peer never makes `close` hang longer than this.
   */
  closeTimeoutMs?: number | undefined;
  /**
   * Upper bound on sending a cancel request (TCP connect + write + server ack). Default 2000.
   */
  cancelTimeoutMs?: number | undefined;
  /**
   * The client class to instantiate for each connection (pg-pool's `Client` option), e.g. a
   * subclass of `pg.Client`. It is constructed with the pg config and must behave like `pg.Client`.
   * Default `pg.Client`.
   */
  Client?: (new (config: ClientConfig) => Client) | undefined;
  /**
   * Called with each new client once it has connected, before the pool uses it (pg-pool's
   * `onConnect`, e.g. `SET search_path`). A rejection — or the connection failing meanwhile —
   * closes the client and fails the connect with `ConnectError` (the hook's error, redacted, as
   * `cause`). Runs within the pool's connect deadline.
   */
  onConnect?: ((client: Client) => void | Promise<void>) | undefined;
  /**
   * Unref the socket of idle connections so that an idle pool does not keep the process alive
   * (pg-pool's `allowExitOnIdle`); a leased connection is ref'd again. Default `false`.
   */
  allowExitOnIdle?: boolean | undefined;
}

/** The largest value PostgreSQL accepts for its integer millisecond settings. */
export const PG_INT_MAX = 2_147_483_647;

export const OPTION_KEYS: ReadonlySet<string> = new Set([
  'statementTimeoutMs',
  'idleInTransactionSessionTimeoutMs',
  'lockTimeoutMs',
  'closeTimeoutMs',
  'cancelTimeoutMs',
  'Client',
  'onConnect',
  'allowExitOnIdle',
]);

/** Adapter option → startup parameter (also the pg `ClientConfig` key and the URL query key). */
export const STARTUP_PARAMS = [
  ['statementTimeoutMs', 'statement_timeout'],
  ['idleInTransactionSessionTimeoutMs', 'idle_in_transaction_session_timeout'],
  ['lockTimeoutMs', 'lock_timeout'],
] as const;

export function validateOptions(config: ClientConfig | string, options: PgAdapterOptions): PgAdapterOptions {
  const problems: { field: string; problem: string }[] = [];
  if (options === null || typeof options !== 'object') {
    throw new ConfigError([{ field: 'options', problem: 'must be an object' }]);
  }
  if (config === null || (typeof config !== 'string' && typeof config !== 'object')) {
    throw new ConfigError([{ field: 'config', problem: 'must be a pg ClientConfig or a connection string' }]);
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) problems.push({ field: key, problem: unknownOption(key, OPTION_KEYS, 'a pgAdapter option') });
  }
  checkNonNegativeInt(problems, 'statementTimeoutMs', options.statementTimeoutMs, PG_INT_MAX);
  checkNonNegativeInt(problems, 'idleInTransactionSessionTimeoutMs', options.idleInTransactionSessionTimeoutMs, PG_INT_MAX);
  checkNonNegativeInt(problems, 'lockTimeoutMs', options.lockTimeoutMs, PG_INT_MAX);
  checkNonNegativeInt(problems, 'closeTimeoutMs', options.closeTimeoutMs, PG_INT_MAX, 1);
  checkNonNegativeInt(problems, 'cancelTimeoutMs', options.cancelTimeoutMs, PG_INT_MAX, 1);
  if (options.Client !== undefined && typeof options.Client !== 'function') {
    problems.push({ field: 'Client', problem: 'must be a client class (e.g. a subclass of pg.Client)' });
  }
  if (options.onConnect !== undefined && typeof options.onConnect !== 'function') {
    problems.push({ field: 'onConnect', problem: 'must be a function (client) => void | Promise<void>' });
  }
  if (options.allowExitOnIdle !== undefined && typeof options.allowExitOnIdle !== 'boolean') {
    problems.push({ field: 'allowExitOnIdle', problem: 'must be a boolean' });
  }

  // Every option takes effect or says why not: a startup parameter set twice would have one copy
  // silently win (pg lets connection-string parameters override the config object).
  const connectionString = typeof config === 'string' ? config : config.connectionString;
  const urlParams = queryParams(connectionString);
  for (const [option, param] of STARTUP_PARAMS) {
    if (options[option] === undefined) continue;
    const inConfig = typeof config === 'object' && config[param] !== undefined && config[param] !== null && config[param] !== false;
    if (inConfig || urlParams.has(param)) {
      problems.push({ field: option, problem: `conflicts with ${param} already set in the pg config or connection string` });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return options;
}

/** Query parameter names of a URL-style connection string (empty for socket paths or non-URLs). */
export function queryParams(connectionString: string | undefined): ReadonlySet<string> {
  if (connectionString === undefined) return new Set();
  try {
    return new Set(new URL(connectionString).searchParams.keys());
  } catch {
    return new Set();
  }
}

/**
 * A connection string must be a `postgres://` / `postgresql://` URL (or pg's `socket:` form or a
 * socket path): anything else fails here, naming the scheme, rather than deep in the driver.
 * The string itself is never echoed (it may carry the password).
 */
export function checkConnectionString(field: string, value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== 'string') throw new ConfigError([{ field, problem: 'must be a string' }]);
  if (value.startsWith('/')) return;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError([{ field, problem: 'is not a postgres:// URL (expected postgres://user@host:5432/database)' }]);
  }
  if (url.protocol === 'postgres:' || url.protocol === 'postgresql:' || url.protocol === 'socket:') return;
  const hint = url.protocol === 'mysql:' || url.protocol === 'mariadb:' ? ' (a MySQL URL: use mysqlAdapter from leasepool/adapters/mysql2)' : '';
  throw new ConfigError([{ field, problem: `must be a postgres:// URL, not ${url.protocol}//${hint}` }]);
}

export function formatHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
