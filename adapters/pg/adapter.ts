/**
 * The leasepool adapter for node-postgres (`pg` >= 8.21).
 *
 * ```ts
 * import { createPool } from 'leasepool';
 * import { pgAdapter } from 'leasepool/adapters/pg';
 * const pool = createPool(pgAdapter(process.env.DATABASE_URL!, { statementTimeoutMs: 30_000 }), { max: 10 });
 * ```
 *
 * The pooled connection (`lease.conn`) is a plain `pg.Client`.
 *
 * Also exported from here: `Pool`, a drop-in replacement for `pg.Pool` on leasepool (see
 * `pool.ts`): `import { Pool } from 'leasepool/adapters/pg'`.
 */
import { Client, type ClientConfig, type QueryResult, type QueryResultRow } from 'pg';
import type { Adapter, CallerStack, ConnectionEvents, TxStatus } from '../../src/adapter';
import { changesSessionCached, commitRolledBack, endsTransactionTextCached, errorMessage, isRetryableServerError, postgresDialect, sameRealmError } from '../../src/dialects/postgres';
import { fetchPassword, secretsOf } from '../../src/credentials';
import { ConfigError, ConnectError } from '../../src/errors';
import { redact, redactError } from '../../src/redact';
import { markSessionChanged, sessionMarked } from '../../src/session-mark';
import { type PgAdapterOptions, STARTUP_PARAMS, validateOptions, checkConnectionString, formatHost } from './config';
import { keepDriverError, isFatal } from './errors';
import { sendCancelRequest } from './cancel';
import { hasReplayed, sessionRole, writePosition } from './cluster';

/** `pool.query` on a pool of the pg adapter: pg's `client.query(text, values)`. */
export type PgQuery = <R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]) => Promise<QueryResult<R>>;

/** pg's typings (8.23) lack the backend key data; a typed view of the fields pg sets at connect. */
export interface BackendKey {
  readonly processID?: number | null;
  readonly secretKey?: number | null;
}

/** pg sets `readyForQuery` false while a statement is on the wire, true on ReadyForQuery (not in its typings). */
export interface WireState {
  readonly readyForQuery?: boolean;
}

/** Per-client bookkeeping: suppress our own end, report the first unexpected error once. */
export interface ConnState {
  /** `'hook'`: connected, `onConnect` running; an error then fails the connect. */
  phase: 'connecting' | 'hook' | 'open' | 'closing' | 'closed';
  reported: boolean;
  hookError?: unknown;
}

/** The SQL text of a `query` first argument: a string or a `{ text }` config. */
export function textOf(firstArg: unknown): string | undefined {
  if (typeof firstArg === 'string') return firstArg;
  if (firstArg !== null && typeof firstArg === 'object') {
    const text = (firstArg as { text?: unknown }).text;
    if (typeof text === 'string') return text;
  }
  return undefined;
}

/** The guard's statement hook: mark the session changed when the text says so. */
export function observeStatement(client: Client, _method: string, firstArg: unknown): void {
  const text = textOf(firstArg);
  if (text !== undefined && changesSessionCached(text)) markSessionChanged(client, true);
}

/** The guard's check inside withTx: a hand-typed COMMIT / ROLLBACK would end withTx's transaction. */
export function controlsTransaction(_client: Client, _method: string, firstArg: unknown): boolean {
  const text = textOf(firstArg);
  return text !== undefined && endsTransactionTextCached(text);
}

/** What pg-pool calls `client.release(err)`: a truthy first argument destroys the connection. */
export function releaseArgDestroys(_client: Client, _method: string, args: readonly unknown[]): boolean {
  return Boolean(args[0]);
}

/** `ref()`/`unref()` of a pg client's socket; a custom client without them is left alone. */
export function setRef(client: Client, ref: boolean): void {
  const c = client as unknown as { ref?: () => void; unref?: () => void };
  try {
    if (ref) c.ref?.();
    else c.unref?.();
  } catch {
    // No socket (closed client): nothing to keep alive.
  }
}

/**
 * Create a leasepool adapter for node-postgres.
 *
 * - `connect` honours the core's `AbortSignal` over DNS, TCP, TLS and the startup handshake: on
 *   abort the socket is destroyed at once and the promise rejects with `ConnectError`; a
 *   connection that completes after the abort is closed, never returned.
 * - An `'error'` and an `'end'` listener are attached before connecting, so an idle socket error
 *   never crashes the process; the first error after connect is reported once to `events.onError`.
 * - Errors never carry the password: `ConnectError` names only `host:port/database` and keeps a
 *   redacted copy of the driver error as `cause`.
 * - `txStatus` reads `client.getTransactionStatus()`: `'I'` idle, `'T'` in_tx, `'E'` failed.
 *   It answers `'unknown'` while a statement is still awaiting its ReadyForQuery — including the
 *   short window right after a failed query has rejected (pg rejects on ErrorResponse; the
 *   ReadyForQuery with the new status follows in a later packet) — and for `null` (nothing received
 *   yet, impossible on a connection `connect` returned, or a pg older than 8.21). On `'unknown'` a
 *   `ROLLBACK` is the safe move: it queues behind the pending exchange and is harmless when idle.
 * - `cancel` sends a real protocol CancelRequest (pid + secret key) on a new short-lived socket to
 *   the same host/port (or Unix socket). Like every PostgreSQL cancel, it is best effort: if the
 *   statement has just finished it may hit the next one on that connection. Clients built with a
 *   custom `stream` factory are cancelled through plain TCP to `host:port` all the same.
 * - `lease.conn.release()` ends the lease, as code written for pg-pool expects; like pg-pool,
 *   `release(err)` / `release(true)` closes the connection instead of returning it.
 * - `Client`, `onConnect` and `allowExitOnIdle` are pg-pool's options of the same names (the
 *   drop-in `Pool` uses them).
 *
 * @param config pg `ClientConfig` or a connection string.
 * @param options see {@link PgAdapterOptions}.
 * @throws ConfigError for bad options, options that conflict with the pg config, or a config pg rejects.
 */
export function pgAdapter(config: ClientConfig | string, options: PgAdapterOptions = {}): Adapter<Client, PgQuery> {
  const opts = validateOptions(config, options);
  const closeTimeoutMs = opts.closeTimeoutMs ?? 1000;
  const cancelTimeoutMs = opts.cancelTimeoutMs ?? 2000;
  const ClientClass = opts.Client ?? Client;
  const onConnect = opts.onConnect;
  const allowExitOnIdle = opts.allowExitOnIdle === true;

  const base: ClientConfig = typeof config === 'string' ? { connectionString: config } : { ...config };
  checkConnectionString(typeof config === 'string' ? 'config' : 'config.connectionString', base.connectionString);
  // Startup parameters are passed as strings: pg forwards truthy values verbatim (after parseInt), so
  // the string '0' is sent while the number 0 would be silently dropped. A typed local widening:
  const startup: Record<string, string> = {};
  for (const [option, param] of STARTUP_PARAMS) {
    const value = opts[option];
    if (value !== undefined) startup[param] = String(value);
  }
  const clientConfig = { ...base, ...startup } as ClientConfig;
  // A password function is called by us, once per new connection and under the connect deadline,
  // so the value it returns is known and masked in every error of that connect.
  const passwordFn = typeof base.password === 'function' ? base.password : undefined;

  // A client that never connects resolves host, port, database and password the way pg will
  // (connection string, environment, defaults) and opens no socket.
  let probe: Client;
  try {
    probe = new Client(clientConfig);
  } catch (err) {
    throw new ConfigError([{ field: 'config', problem: `rejected by pg: ${redact(errorMessage(err))}` }]);
  }
  const secrets: string[] = [];
  if (typeof probe.password === 'string' && probe.password.length > 0) {
    secrets.push(probe.password, encodeURIComponent(probe.password));
  }
  const host = probe.host;
  const port = probe.port;
  const target = `${formatHost(host)}:${port}/${probe.database ?? ''}`;

  const states = new WeakMap<Client, ConnState>();

  const connectErrorOf = (err: unknown, secrets: readonly string[]): ConnectError => {
    const code = (err as { code?: unknown } | null)?.code;
    const suffix = typeof code === 'string' ? ` [${code}]` : '';
    const error = new ConnectError(`pg: cannot connect to ${target}: ${redact(errorMessage(err), secrets)}${suffix}`, {
      cause: redactError(sameRealmError(err), secrets),
    });
    keepDriverError(error, err, secrets);
    return error;
  };
  const abortError = (signal: AbortSignal, secrets: readonly string[]): ConnectError =>
    new ConnectError(`pg: connecting to ${target} was aborted (${redact(errorMessage(signal.reason), secrets)})`, {
      cause: redactError(sameRealmError(signal.reason), secrets),
    });

  async function close(client: Client): Promise<void> {
    const state = states.get(client);
    if (state !== undefined) {
      if (state.phase === 'closed') return;
      state.phase = 'closing';
    }
    let ended: Promise<unknown>;
    try {
      ended = client.end();
    } catch {
      ended = Promise.resolve();
    }
    const graceful = await settledWithin(ended, closeTimeoutMs);
    if (!graceful) {
      destroySocket(client);
      await settledWithin(ended, 100);
    }
    if (state !== undefined) state.phase = 'closed';
  }

  function connect(signal: AbortSignal, events: ConnectionEvents): Promise<Client> {
    if (signal.aborted) return Promise.reject(abortError(signal, secrets));
    if (passwordFn === undefined) return connectWith(clientConfig, signal, events, secrets);
    return fetchPassword(passwordFn, signal, 'pg', target, secrets).then((password) =>
      connectWith({ ...clientConfig, password }, signal, events, [...secrets, ...secretsOf(password)]),
    );
  }

  function connectWith(config: ClientConfig, signal: AbortSignal, events: ConnectionEvents, secrets: readonly string[]): Promise<Client> {
    if (signal.aborted) return Promise.reject(abortError(signal, secrets));
    const connectError = (err: unknown): ConnectError => connectErrorOf(err, secrets);
    let client: Client;
    try {
      client = new ClientClass(config);
    } catch (err) {
      return Promise.reject(connectError(err));
    }
    const state: ConnState = { phase: 'connecting', reported: false };
    states.set(client, state);
    const report = (err: unknown): void => {
      if (state.phase === 'hook') {
        state.hookError ??= err;
        return;
      }
      // While connecting, pg routes errors to the connect callback; after our own close they are expected.
      if (state.phase !== 'open' || state.reported) return;
      state.reported = true;
      try {
        events.onError(err);
      } catch {
        // A throwing listener must not turn into an uncaught exception inside pg's socket handler.
      }
    };
    client.on('error', report);
    client.on('end', () => report(new Error('Connection terminated unexpectedly')));

    return new Promise<Client>((resolve, reject) => {
      let settled = false;
      const onAbort = (): void => {
        if (settled) return;
        settled = true;
        state.phase = 'closed';
        destroySocket(client);
        reject(abortError(signal, secrets));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const done = (err: Error | null): void => {
        signal.removeEventListener('abort', onAbort);
        if (settled) {
          // Aborted earlier (the socket is already destroyed): whatever pg reports now, the client
          // is not wanted. Destroy again in case a connect slipped through.
          destroySocket(client);
          return;
        }
        settled = true;
        if (err !== null) {
          state.phase = 'closed';
          destroySocket(client);
          reject(connectError(err));
          return;
        }
        if (signal.aborted) {
          void close(client);
          reject(abortError(signal, secrets));
          return;
        }
        if (onConnect === undefined) {
          opened();
          return;
        }
        state.phase = 'hook';
        new Promise<void>((ok) => ok(onConnect(client))).then(
          () => {
            if (state.hookError !== undefined) return failHook(state.hookError);
            if (signal.aborted) {
              void close(client);
              return reject(abortError(signal, secrets));
            }
            opened();
          },
          failHook,
        );
      };
      const opened = (): void => {
        state.phase = 'open';
        markSessionChanged(client, false);
        if (allowExitOnIdle) setRef(client, false); // idle until leased
        resolve(client);
      };
      const failHook = (err: unknown): void => {
        const error = new ConnectError(`pg: onConnect failed for a new connection to ${target}: ${redact(errorMessage(err), secrets)}`, {
          cause: redactError(sameRealmError(err), secrets),
        });
        keepDriverError(error, err, secrets);
        void close(client).then(() => reject(error));
      };
      try {
        client.connect(done);
      } catch (err) {
        // e.g. an invalid port makes net.Socket#connect throw synchronously.
        done(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  return {
    name: 'pg',
    sessionRole,
    writePosition,
    hasReplayed,
    server: { system: 'postgresql', address: host, port, namespace: probe.database ?? undefined },
    refConnection: setRef,
    queryFunction: (conn: Client): PgQuery => ((...args: [string, unknown[]?]) => conn.query(...args)) as PgQuery,
    target,
    sql: postgresDialect,
    connect,
    close,
    async validate(client: Client): Promise<void> {
      await client.query('SELECT 1');
    },
    exec(client: Client, sql: string): Promise<unknown> {
      // The driver's promise as it is: no async frame, no `.then` (promises per control statement
      // are what a transaction's overhead is made of).
      return client.query(sql);
    },
    txStatus(client: Client): TxStatus {
      // pg rejects a failed query on ErrorResponse, before the ReadyForQuery that carries the new
      // status (the server flushes them separately): until it arrives the last status is stale.
      if ((client as unknown as WireState).readyForQuery === false) return 'unknown';
      const status = typeof client.getTransactionStatus === 'function' ? client.getTransactionStatus() : null;
      switch (status) {
        case 'I':
          return 'idle';
        case 'T':
          return 'in_tx';
        case 'E':
          return 'failed';
        default:
          return 'unknown';
      }
    },
    settle(client: Client): Promise<void> {
      return untilReadyForQuery(client, closeTimeoutMs);
    },
    isFatal,
    isRetryable: isRetryableServerError,
    cancel(client: Client): Promise<void> {
      const key = client as unknown as BackendKey;
      const pid = key.processID;
      const secret = key.secretKey;
      if (typeof pid !== 'number' || typeof secret !== 'number') return Promise.resolve();
      return sendCancelRequest(client.host || host, client.port || port, pid, secret, cancelTimeoutMs);
    },
    backendId(client: Client): number | undefined {
      const pid = (client as unknown as BackendKey).processID;
      return typeof pid === 'number' ? pid : undefined;
    },
    async reset(client: Client): Promise<void> {
      await client.query('DISCARD ALL');
      markSessionChanged(client, false);
      // DISCARD ALL deallocated the server's prepared statements: pg must prepare named ones again.
      const parsed = (client as unknown as { connection?: { parsedStatements?: Record<string, unknown> } }).connection;
      if (parsed?.parsedStatements !== undefined) parsed.parsedStatements = {};
    },
    commitRolledBack,
    controlsTransaction,
    observeStatement,
    sessionChanged(client: Client): boolean {
      return sessionMarked(client);
    },
    sendStatement,
    statementMethods: ['query'],
    lifecycleMethods: { release: ['release'], destroy: ['end'] },
    onReleaseCall: releaseArgDestroys,
    ...(allowExitOnIdle
      ? { onLease: (client: Client) => setRef(client, true), onIdle: (client: Client) => setRef(client, false) }
      : {}),
  };
}

/**
 * `lease.conn.query(text | config[, values])` in promise form, sent on pg's callback API with one
 * promise of ours: pg's promise form would make its own, and the guard a second one to track it.
 * Declined (the guard calls pg's `query` as it is) for a Submittable (a cursor, a stream …), a
 * config with its own `callback`, a client built with a custom `Promise`, and any other shape of
 * arguments.
 */
export function sendStatement(
  client: Client,
  method: string,
  args: readonly unknown[],
  _callerStack: CallerStack | undefined,
  onEnd: (err: unknown, result: unknown) => void,
): Promise<unknown> | undefined {
  if (method !== 'query' || args.length === 0 || args.length > 2) return undefined;
  const first = args[0];
  if (typeof first !== 'string') {
    if (first === null || typeof first !== 'object') return undefined;
    const config = first as { submit?: unknown; callback?: unknown };
    if (typeof config.submit === 'function' || typeof config.callback === 'function') return undefined;
  }
  const ownPromise = (client as unknown as { _Promise?: unknown })._Promise;
  if (ownPromise !== undefined && ownPromise !== Promise) return undefined;
  return new Promise((resolve, reject) => {
    const done = (err: Error | null | undefined, result: unknown): void => {
      if (err) {
        onEnd(err, undefined);
        reject(err);
        return;
      }
      onEnd(undefined, result);
      resolve(result);
    };
    const query = client.query as unknown as (...queryArgs: unknown[]) => void;
    try {
      if (args.length === 2) query.call(client, first, args[1], done);
      else query.call(client, first, done);
    } catch (err) {
      // pg refuses some arguments synchronously: the statement never left, it is not in flight.
      done(err instanceof Error ? err : new Error(String(err)), undefined);
    }
  });
}

/** Resolve at the next ReadyForQuery (when a statement's status is still on the wire), or after `ms`. */
export function untilReadyForQuery(client: Client, ms: number): Promise<void> {
  const connection = (client as unknown as { connection?: NodeJS.EventEmitter }).connection;
  if ((client as unknown as WireState).readyForQuery !== false || connection === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const finish = (): void => {
      clearTimeout(timer);
      connection.off('readyForQuery', finish);
      connection.off('end', finish);
      resolve();
    };
    const timer = setTimeout(finish, ms);
    timer.unref();
    connection.once('readyForQuery', finish);
    connection.once('end', finish);
  });
}

/** pg's `Connection#stream` (net or TLS socket): destroying it is the only way to stop a handshake. */
export function destroySocket(client: Client): void {
  try {
    client.connection.stream.destroy();
  } catch {
    // Already gone.
  }
}

/** Resolves true if `promise` settles within `ms`, false otherwise; never rejects. */
export function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    timer.unref();
    promise.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}
