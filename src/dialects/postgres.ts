/**
 * PostgreSQL knowledge shared by the `pg` and PGlite adapters: the transaction dialect and
 * error classification by SQLSTATE. It imports no driver, so loading one PostgreSQL adapter
 * never requires the other's driver to be installed.
 *
 * @internal Not a public entry point.
 */
import type { BeginOptions, IsolationLevel, TxDialect } from '../adapter';
import { ConfigError } from '../errors';
import { show } from '../options';

/** Fixed keyword table: the only text `begin()` can emit for an isolation level. */
const ISOLATION_SQL: Readonly<Record<IsolationLevel, string>> = Object.freeze({
  'read uncommitted': 'ISOLATION LEVEL READ UNCOMMITTED',
  'read committed': 'ISOLATION LEVEL READ COMMITTED',
  'repeatable read': 'ISOLATION LEVEL REPEATABLE READ',
  serializable: 'ISOLATION LEVEL SERIALIZABLE',
});

/** Savepoint names come from the core (`lp_sp_<n>`); anything else is a bug, never SQL. */
const SAVEPOINT_NAME = /^[a-z_][a-z0-9_]*$/;
/** PostgreSQL truncates identifiers at NAMEDATALEN - 1 bytes. */
const MAX_IDENTIFIER_LENGTH = 63;

function savepointName(name: string): string {
  if (typeof name !== 'string' || !SAVEPOINT_NAME.test(name) || name.length > MAX_IDENTIFIER_LENGTH) {
    throw new ConfigError([{ field: 'savepoint', problem: `name must match ${String(SAVEPOINT_NAME)} and be at most 63 characters` }]);
  }
  return name;
}

/**
 * Build the single `BEGIN …` statement from allow-listed keywords only. The core validates the
 * options already; this maps them again through a fixed table and rejects anything unknown, so no
 * caller-supplied text can ever reach the SQL.
 */
function begin(opts: BeginOptions): readonly string[] {
  const parts = ['BEGIN'];
  const problems: { field: string; problem: string }[] = [];
  const isolation: unknown = opts.isolation;
  if (isolation !== undefined) {
    const sql = typeof isolation === 'string' && Object.hasOwn(ISOLATION_SQL, isolation) ? ISOLATION_SQL[isolation as IsolationLevel] : undefined;
    if (sql === undefined) problems.push({ field: 'isolation', problem: `must be one of ${Object.keys(ISOLATION_SQL).join(', ')}` });
    else parts.push(sql);
  }
  const readOnly: unknown = opts.readOnly;
  if (readOnly === true) parts.push('READ ONLY');
  else if (readOnly === false) parts.push('READ WRITE');
  else if (readOnly !== undefined) problems.push({ field: 'readOnly', problem: 'must be a boolean' });
  const deferrable: unknown = opts.deferrable;
  if (deferrable === true) parts.push('DEFERRABLE');
  else if (deferrable === false) parts.push('NOT DEFERRABLE');
  else if (deferrable !== undefined) problems.push({ field: 'deferrable', problem: 'must be a boolean' });
  if (problems.length > 0) throw new ConfigError(problems);
  return [parts.join(' ')];
}

/** The PostgreSQL transaction dialect (identical for `pg` and PGlite). */
export const postgresDialect: TxDialect = Object.freeze({
  begin,
  commit: 'COMMIT',
  rollback: 'ROLLBACK',
  savepoint: (name: string) => `SAVEPOINT ${savepointName(name)}`,
  releaseSavepoint: (name: string) => `RELEASE SAVEPOINT ${savepointName(name)}`,
  rollbackToSavepoint: (name: string) => `ROLLBACK TO SAVEPOINT ${savepointName(name)}`,
});

/** SQLSTATE (five characters) carried by a driver error as `code`, if any. */
export function sqlState(err: unknown): string | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * SQLSTATEs after which the server has closed (or is closing) the session:
 * admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped, idle_session_timeout,
 * idle_in_transaction_session_timeout, transaction_timeout. Class `08` is checked separately.
 */
const FATAL_SQLSTATES: ReadonlySet<string> = new Set(['57P01', '57P02', '57P03', '57P04', '57P05', '25P03', '25P04']);

/** True when a PostgreSQL server error means the session is gone (class 08, 57P0x, severity FATAL/PANIC). */
export function isFatalServerError(err: unknown): boolean {
  const state = sqlState(err);
  if (state !== undefined && (state.startsWith('08') || FATAL_SQLSTATES.has(state))) return true;
  if (err === null || typeof err !== 'object') return false;
  const severity = (err as { severity?: unknown }).severity;
  return state !== undefined && (severity === 'FATAL' || severity === 'PANIC');
}

/** serialization_failure (40001) and deadlock_detected (40P01): the transaction may be rerun. */
export function isRetryableServerError(err: unknown): boolean {
  const state = sqlState(err);
  return state === '40001' || state === '40P01';
}

/** Validation helper: `undefined` or a non-negative integer of at most `max`. */
export function checkNonNegativeInt(
  problems: { field: string; problem: string }[],
  field: string,
  value: unknown,
  max: number,
  min = 0,
): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    problems.push({ field, problem: `must be an integer between ${min} and ${max} (got ${show(value)})` });
  }
}

/**
 * Message of anything thrown. Duck-typed: errors from another realm (Node core errors seen from a
 * jest sandbox, worker errors) are not `instanceof Error` here.
 */
export function errorMessage(err: unknown): string {
  if (err !== null && typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string') {
    return (err as { message: string }).message;
  }
  return String(err);
}

/**
 * An `Error` of this realm for an error-like value of another realm, so `redactError` (which
 * checks `instanceof Error`) keeps its name, stack and fields such as `code`. Other values pass through.
 */
export function sameRealmError(err: unknown): unknown {
  if (err instanceof Error || err === null || typeof err !== 'object') return err;
  const src = err as Record<string, unknown>;
  if (typeof src.message !== 'string') return err;
  const copy = new Error(src.message);
  if (typeof src.name === 'string') copy.name = src.name;
  copy.stack = typeof src.stack === 'string' ? src.stack : `${copy.name}: ${src.message}`;
  for (const key of Object.keys(src)) {
    if (key !== 'message' && key !== 'stack' && key !== 'name') (copy as unknown as Record<string, unknown>)[key] = src[key];
  }
  return copy;
}

/** PostgreSQL's COMMIT in an aborted transaction succeeds with the command tag ROLLBACK. */
export function commitRolledBack(reply: unknown): boolean {
  return reply !== null && typeof reply === 'object' && (reply as { command?: unknown }).command === 'ROLLBACK';
}

const LEADING_SPACE_AND_COMMENTS = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/;
/** Session-level advisory locks (the `_xact_` variants end with the transaction). */
const SESSION_ADVISORY_LOCK = /pg_(?:try_)?advisory_lock(?:_shared)?\s*\(/i;
const SET_CONFIG = /set_config\s*\(/i;
const SET_CONFIG_CALLS = /set_config\s*\(/gi;

/**
 * True when some `set_config(name, value, is_local)` call in `sql` is not plainly local: its last
 * argument is anything but `true` (each call is read, not the text as a whole).
 */
function setsConfigForSession(sql: string): boolean {
  for (const match of sql.matchAll(SET_CONFIG_CALLS)) {
    let depth = 0;
    let lastArg = (match.index ?? 0) + match[0].length;
    let end = -1;
    for (let i = lastArg; i < sql.length && end < 0; i++) {
      const ch = sql.charAt(i);
      if (ch === "'" || ch === '"') {
        const close = sql.indexOf(ch, i + 1);
        i = close < 0 ? sql.length : close;
      } else if (ch === '(') depth++;
      else if (ch === ')') {
        if (depth === 0) end = i;
        else depth--;
      } else if (ch === ',' && depth === 0) lastArg = i + 1;
    }
    if (end < 0 || sql.slice(lastArg, end).trim().toLowerCase() !== 'true') return true;
  }
  return false;
}

/**
 * True when a statement may leave session state that outlives the lease and could cost the next
 * borrower a write or a lock: session `SET`/`RESET` (not `SET LOCAL`, not `SET TRANSACTION`),
 * session advisory locks, `set_config(…, false)`, temporary tables (they shadow real ones),
 * `LISTEN`, `PREPARE`, `DECLARE … WITH HOLD`, `LOAD`. A function that does such things inside is
 * not seen: use `resetOnRelease` for full hygiene.
 */
export function changesSession(sql: string): boolean {
  if (SESSION_ADVISORY_LOCK.test(sql)) return true;
  if (SET_CONFIG.test(sql) && setsConfigForSession(sql)) return true;
  // A simple-protocol text may hold several statements (`SELECT 1; SET …`): each one's head counts.
  if (statementChangesSession(sql)) return true;
  return sql.includes(';') && splitStatements(sql).some(statementChangesSession);
}

/** `changesSession` for the head of one statement. */
function statementChangesSession(sql: string): boolean {
  const start = LEADING_SPACE_AND_COMMENTS.exec(sql)?.[0].length ?? 0;
  const head = sql.slice(start, start + 64).toUpperCase();
  const word = /^[A-Z_]+/.exec(head)?.[0];
  switch (word) {
    case 'SET':
      return !/^SET\s+(LOCAL|TRANSACTION)\b/.test(head);
    case 'RESET':
    case 'LISTEN':
    case 'PREPARE':
    case 'LOAD':
      return true;
    case 'CREATE':
      return /^CREATE\s+(GLOBAL\s+|LOCAL\s+)?TEMP(ORARY)?\b/.test(head);
    case 'DECLARE':
      return /\bWITH\s+HOLD\b/i.test(sql);
    default:
      return false;
  }
}

const SESSION_CACHE_ENTRIES = 512;
const SESSION_CACHE_TEXT_LENGTH = 1_024;
const sessionCache = new Map<string, boolean>();

/** `changesSession`, remembered by text (applications send the same few texts over and over). */
export function changesSessionCached(sql: string): boolean {
  if (sql.length > SESSION_CACHE_TEXT_LENGTH) return changesSession(sql);
  let changes = sessionCache.get(sql);
  if (changes === undefined) {
    changes = changesSession(sql);
    if (sessionCache.size >= SESSION_CACHE_ENTRIES) sessionCache.clear();
    sessionCache.set(sql, changes);
  }
  return changes;
}

/**
 * True when a statement text ends the open transaction: `COMMIT`, `END`, `ABORT`, `ROLLBACK` (not
 * `ROLLBACK TO` a savepoint), `PREPARE TRANSACTION`, in any statement of a multi-statement text.
 * (`BEGIN` inside a transaction is only a warning in PostgreSQL.)
 */
export function endsTransactionText(sql: string): boolean {
  if (statementEndsTransaction(sql)) return true;
  return sql.includes(';') && splitStatements(sql).some(statementEndsTransaction);
}

/**
 * The statements of a multi-statement text, split at each `;` outside string literals (`'…'`,
 * `E'…'`), quoted identifiers, dollar quotes and comments (block comments nest in PostgreSQL).
 */
export function splitStatements(sql: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql.charAt(i);
    if (ch === "'" || ch === '"') {
      // E'…' strings take backslash escapes; a doubled quote is a quote in either form.
      const escapes = ch === "'" && i > 0 && (sql.charAt(i - 1) === 'E' || sql.charAt(i - 1) === 'e');
      for (i++; i < sql.length; i++) {
        const c = sql.charAt(i);
        if (escapes && c === '\\') i++;
        else if (c === ch) {
          if (sql.charAt(i + 1) === ch) i++;
          else break;
        }
      }
    } else if (ch === '-' && sql.charAt(i + 1) === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end;
    } else if (ch === '/' && sql.charAt(i + 1) === '*') {
      let depth = 1;
      for (i += 2; i < sql.length && depth > 0; i++) {
        if (sql.startsWith('/*', i)) {
          depth++;
          i++;
        } else if (sql.startsWith('*/', i)) {
          depth--;
          i++;
        }
      }
      i--;
    } else if (ch === '$') {
      const tag = /^\$[A-Za-z_][A-Za-z0-9_]*\$|^\$\$/.exec(sql.slice(i, i + 64))?.[0];
      if (tag !== undefined && !(i > 0 && /[A-Za-z0-9_]/.test(sql.charAt(i - 1)))) {
        const end = sql.indexOf(tag, i + tag.length);
        i = end < 0 ? sql.length : end + tag.length - 1;
      }
    } else if (ch === ';') {
      parts.push(sql.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(sql.slice(start));
  return parts;
}

function statementEndsTransaction(sql: string): boolean {
  const start = LEADING_SPACE_AND_COMMENTS.exec(sql)?.[0].length ?? 0;
  const head = sql.slice(start, start + 64).toUpperCase();
  const word = /^[A-Z_]+/.exec(head)?.[0];
  switch (word) {
    case 'COMMIT':
    case 'END':
    case 'ABORT':
      return true;
    case 'ROLLBACK':
      return !/^ROLLBACK\s+((WORK|TRANSACTION)\s+)?TO\b/.test(head);
    case 'PREPARE':
      return /^PREPARE\s+TRANSACTION\b/.test(head);
    default:
      return false;
  }
}

const endsCache = new Map<string, boolean>();

/** `endsTransactionText`, remembered by text (see `changesSessionCached`). */
export function endsTransactionTextCached(sql: string): boolean {
  if (sql.length > SESSION_CACHE_TEXT_LENGTH) return endsTransactionText(sql);
  let ends = endsCache.get(sql);
  if (ends === undefined) {
    ends = endsTransactionText(sql);
    if (endsCache.size >= SESSION_CACHE_ENTRIES) endsCache.clear();
    endsCache.set(sql, ends);
  }
  return ends;
}
