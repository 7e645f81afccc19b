/**
 * Configuration: a `mysql://` URL or mysql2 connection options, resolved into what each new
 * connection is opened with and the target named in messages (never a password).
 */
import type { ConnectionOptions } from 'mysql2/promise';
import type { ServerIdentity } from '../../src/adapter';
import { secretsOf, type PasswordSource } from '../../src/credentials';
import { ConfigError } from '../../src/errors';
import { redact } from '../../src/redact';

/**
 * mysql2's connection options, except that `password` may also be a function called for every
 * new connection (a rotating credential, e.g. an IAM token), within the pool's `connectTimeoutMs`.
 */
export type MysqlConnectionConfig = Omit<ConnectionOptions, 'password'> & {
  /** The password, or a function returning it (called once per new connection). */
  password?: PasswordSource | undefined;
};

export interface Resolved {
  /** The password function, when `password` is one: called before each connect. */
  readonly passwordFn?: (() => string | Promise<string>) | undefined;
  /** Options given to mysql2 for each new connection (a fresh copy each time: mysql2 mutates it). */
  readonly driverOptions: () => ConnectionOptions;
  readonly target: string;
  /** Who the connections talk to (OpenTelemetry attributes). */
  readonly server: ServerIdentity;
  readonly secrets: readonly string[];
}

export function parseUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

export function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export function resolveConfig(config: MysqlConnectionConfig | string): Resolved {
  const given: MysqlConnectionConfig = typeof config === 'string' ? { uri: config } : { ...config };
  const passwordFn = typeof given.password === 'function' ? given.password : undefined;
  if (passwordFn !== undefined) delete given.password;
  const base = given as ConnectionOptions;
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
  const server: ServerIdentity = {
    system: uri?.protocol === 'mariadb:' ? 'mariadb' : 'mysql',
    ...(base.socketPath !== undefined ? { address: base.socketPath } : { address: host, port }),
    namespace: database,
  };
  return { driverOptions: () => ({ ...frozen }), target, server, secrets: secretList, passwordFn };
}

/** `resolved` for one connect with a password a password function just returned. */
export function withPassword(resolved: Resolved, password: string): Resolved {
  const secrets = [...resolved.secrets, ...secretsOf(password)].sort((a, b) => b.length - a.length);
  return { ...resolved, passwordFn: undefined, secrets, driverOptions: () => ({ ...resolved.driverOptions(), password }) };
}

export function checkPositive(problems: { field: string; problem: string }[], field: string, value: unknown): void {
  if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value > 0)) {
    problems.push({ field, problem: 'must be a positive number of milliseconds' });
  }
}
