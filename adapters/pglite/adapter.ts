/**
 * The leasepool adapter for PGlite (`@electric-sql/pglite` >= 0.5): PostgreSQL in WASM, in process.
 *
 * ```ts
 * import { createPool } from 'leasepool';
 * import { pgliteAdapter } from 'leasepool/adapters/pglite';
 * const pool = createPool(pgliteAdapter({ dataDir: './data' }), { max: 1 });
 * await pool.withTx(async (conn) => conn.query('INSERT INTO t VALUES ($1)', [1]));
 * ```
 *
 * PGlite is ONE database session: two callers on it share one transaction. The adapter therefore
 * declares `maxConnections: 1`; each pooled "connection" is a {@link PgliteConnection} wrapping
 * that single instance.
 *
 * Under jest, PGlite's CommonJS build needs `node --experimental-vm-modules` (it uses dynamic
 * `import()`). The first instance takes about 3 s and 700 MiB to start: share one per process.
 */
import { PGlite, type QueryOptions } from '@electric-sql/pglite';
import type { Adapter, ConnectionEvents, TxStatus } from '../../src/adapter';
import { ConnectError } from '../../src/errors';
import { redactError } from '../../src/redact';
import { raceAbort } from '../../src/time';
import { changesSessionCached, endsTransactionTextCached, errorMessage, isFatalServerError, isRetryableServerError, postgresDialect, sameRealmError } from '../../src/dialects/postgres';
import { markSessionChanged, sessionMarked } from '../../src/session-mark';
import { isPglite, validateOptions, type PgliteAdapterOptions, type PgliteInstance } from './config';
import { FATAL_MESSAGES, lastCallFailed, markClosed, PgliteConnection } from './connection';

/** The WASM export PGlite uses for `isInTransaction`'s sibling: true in an aborted transaction block. */
interface AbortedStateExport {
  _IsAbortedTransactionBlockState?: () => number;
}

/**
 * Create a leasepool adapter for PGlite.
 *
 * - Given a `PGlite` instance: every connection wraps it; closing connections never closes it
 *   (you own it, you close it).
 * - Given options (or nothing: in-memory): the instance is created lazily by the first `connect`,
 *   shared by later ones, and kept open while the pool lives, even when the pool closes its only
 *   connection (idle timeout, `maxLifetimeMs`), so an in-memory database keeps its data. It is
 *   closed by `pool.close()` (the adapter's `dispose`).
 * - `connect` honours its signal while the instance starts: the caller gets `ConnectError` at once;
 *   the start-up goes on in the background for a later `connect`, and the instance is closed if
 *   nobody is waiting for it when it is ready.
 * - `txStatus`: `idle` outside a transaction block, `failed` in an aborted one, else `in_tx`.
 * - No `cancel`: PGlite runs each statement synchronously on the JavaScript thread.
 *
 * @throws ConfigError when `source` is neither a PGlite instance nor an options object.
 */
export function pgliteAdapter(source?: PgliteAdapterOptions | PgliteInstance): Adapter<PgliteConnection, PgliteConnection['query']> {
  const userDb = isPglite(source) ? source : undefined;
  const options: PgliteAdapterOptions = userDb === undefined ? validateOptions(source) : {};
  const dataDir = userDb !== undefined ? userDb.dataDir : options.dataDir;
  const target = `pglite:${dataDir === undefined || dataDir === '' ? 'memory://' : dataDir}`;

  // Owned-instance bookkeeping (unused when the user passed an instance).
  let instance: PgliteInstance | undefined;
  let creating: Promise<PgliteInstance> | undefined;
  let closing: Promise<void> = Promise.resolve();
  let open = 0;
  let waiting = 0;

  const retire = (db: PgliteInstance): Promise<void> => {
    closing = closing.then(() => db.close()).catch(() => undefined);
    return closing;
  };

  const ownedInstance = (signal: AbortSignal): Promise<PgliteInstance> => {
    if (instance !== undefined && !instance.closed) return Promise.resolve(instance);
    instance = undefined;
    if (creating === undefined) {
      creating = (async () => {
        await closing;
        const db = new PGlite(options);
        await db.waitReady;
        return db;
      })().then(
        (db) => {
          creating = undefined;
          if (waiting === 0 && open === 0) void retire(db);
          else instance = db;
          return db;
        },
        (err: unknown) => {
          creating = undefined;
          throw err;
        },
      );
    }
    waiting++;
    return raceAbort(creating, signal).finally(() => {
      waiting--;
    });
  };

  const userInstance = async (signal: AbortSignal): Promise<PgliteInstance> => {
    const db = userDb as PgliteInstance;
    if (db.closed) throw new Error('PGlite is closed');
    await raceAbort(db.waitReady, signal);
    return db;
  };

  const abortError = (signal: AbortSignal): ConnectError =>
    new ConnectError(`pglite: opening ${target} was aborted (${errorMessage(signal.reason)})`, { cause: redactError(sameRealmError(signal.reason)) });

  async function close(conn: PgliteConnection): Promise<void> {
    if (!markClosed(conn)) return;
    if (userDb !== undefined) return;
    open--;
  }

  async function dispose(): Promise<void> {
    if (userDb !== undefined) return;
    const pending = creating;
    if (pending !== undefined) await pending.catch(() => undefined);
    const db = instance;
    instance = undefined;
    if (db !== undefined) await retire(db);
  }

  async function connect(signal: AbortSignal, _events: ConnectionEvents): Promise<PgliteConnection> {
    if (signal.aborted) throw abortError(signal);
    let db: PgliteInstance;
    try {
      db = userDb !== undefined ? await userInstance(signal) : await ownedInstance(signal);
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      throw new ConnectError(`pglite: cannot open ${target}: ${errorMessage(err)}`, { cause: redactError(sameRealmError(err)) });
    }
    const conn = new PgliteConnection(db);
    if (userDb === undefined) open++;
    if (signal.aborted) {
      await close(conn);
      throw abortError(signal);
    }
    return conn;
  }

  return {
    name: 'pglite',
    server: { system: 'postgresql' },
    queryFunction: (conn: PgliteConnection): PgliteConnection['query'] =>
      ((text: string, params?: unknown[], options?: QueryOptions) => conn.query(text, params, options)) as PgliteConnection['query'],
    target,
    maxConnections: 1,
    sql: postgresDialect,
    connect,
    close,
    dispose,
    async validate(conn: PgliteConnection): Promise<void> {
      await conn.query('SELECT 1');
    },
    async exec(conn: PgliteConnection, sql: string): Promise<void> {
      await conn.exec(sql);
    },
    txStatus(conn: PgliteConnection): TxStatus {
      const db = conn.pglite;
      if (conn.closed || db.closed) return 'unknown';
      try {
        if (!db.isInTransaction()) return 'idle';
        const aborted = (db.Module as unknown as AbortedStateExport)._IsAbortedTransactionBlockState;
        if (typeof aborted === 'function') return aborted() !== 0 ? 'failed' : 'in_tx';
        // Older builds without the export: infer from the last statement run through this handle.
        return lastCallFailed(conn) ? 'failed' : 'in_tx';
      } catch {
        return 'unknown';
      }
    },
    isFatal,
    isRetryable: isRetryableServerError,
    controlsTransaction(_conn: PgliteConnection, _method: string, firstArg: unknown): boolean {
      return typeof firstArg === 'string' && endsTransactionTextCached(firstArg);
    },
    async reset(conn: PgliteConnection): Promise<void> {
      await conn.exec('DISCARD ALL');
      markSessionChanged(conn, false);
    },
    observeStatement,
    sessionChanged(conn: PgliteConnection): boolean {
      return sessionMarked(conn);
    },
    statementMethods: ['query', 'exec'],
  };
}

/**
 * The guard's statement hook: mark the session changed when the text says so. PGlite is one
 * session that no new connection replaces, so at release such a handle is reset (`DISCARD ALL`)
 * before it is closed: the next borrower never inherits the change, with default options too.
 */
function observeStatement(conn: PgliteConnection, _method: string, firstArg: unknown): void {
  if (typeof firstArg === 'string' && changesSessionCached(firstArg)) markSessionChanged(conn, true);
}

/** True when `err` means the PGlite instance (or this handle) is unusable. */
function isFatal(err: unknown): boolean {
  if (isFatalServerError(err)) return true;
  if (err === null || typeof err !== 'object') return false;
  const { name, message } = err as { name?: unknown; message?: unknown };
  // WebAssembly.RuntimeError (trap) or Emscripten's exit: the WASM instance is dead.
  if (name === 'RuntimeError' || name === 'ExitStatus') return true;
  return typeof message === 'string' && (FATAL_MESSAGES.includes(message) || message.startsWith('Aborted('));
}

