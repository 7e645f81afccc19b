/**
 * The mysql2 adapter's internals that its tests and the drop-in pool share: what a statement's text
 * does to the transaction state, and mysql2's `trace` stack capture. Not an entry point of the
 * package (`leasepool/adapters/mysql2` exports only the public names).
 */
import type { CallerStack } from '../../src/adapter';

/** What a statement does to the transaction state, as far as its text tells. */
export type StatementEffect =
  /** Opens a transaction (`START TRANSACTION`, `BEGIN`, `COMMIT AND CHAIN` …). */
  | 'begin'
  /** Ends it (`COMMIT`, `ROLLBACK`). */
  | 'end'
  /** Ends it implicitly before running (DDL, `LOCK TABLES`, `GRANT`, `SET autocommit` …). */
  | 'implicit_commit'
  /** Leaves it as it is (`SELECT`, DML, `SAVEPOINT`, `ROLLBACK TO SAVEPOINT` …). */
  | 'none'
  /** Cannot tell (`CALL`, `EXECUTE`, several statements in one string, executable comments …). */
  | 'unknown';

// ---------------------------------------------------------------------------------------------
// Statement classification (exported for tests and for the compat facade).

const NONE_KEYWORDS = new Set([
  'SELECT', 'WITH', 'INSERT', 'UPDATE', 'DELETE', 'REPLACE', 'DO', 'VALUES', 'TABLE', 'SHOW', 'DESC',
  'DESCRIBE', 'EXPLAIN', 'HELP', 'SAVEPOINT', 'RELEASE', 'HANDLER', 'USE', 'PREPARE', 'DEALLOCATE',
  'GET', 'SIGNAL', 'RESIGNAL', 'KILL', 'CHECKSUM',
]);

const IMPLICIT_COMMIT_KEYWORDS = new Set([
  'CREATE', 'ALTER', 'DROP', 'TRUNCATE', 'RENAME', 'LOCK', 'UNLOCK', 'GRANT', 'REVOKE', 'ANALYZE',
  'CHECK', 'OPTIMIZE', 'REPAIR', 'FLUSH', 'RESET', 'INSTALL', 'UNINSTALL', 'CACHE', 'LOAD', 'START',
  'STOP', 'CHANGE', 'PURGE', 'BACKUP',
]);

/** The leading keyword of a statement, before any normalisation (see classifyStatement). */
const LEADING_WORD = /^[A-Za-z_]+/;
/** First words whose effect depends on the rest of the statement (the switch in classifyStatement). */
const NEEDS_FULL_TEXT: ReadonlySet<string> = new Set(['BEGIN', 'START', 'COMMIT', 'ROLLBACK', 'SET', 'XA', 'CALL', 'EXECUTE']);

/** Skip leading whitespace and ordinary comments. Returns -1 at an executable comment (`/*!`, `/*M!`). */
function skipLeading(sql: string): number {
  let i = 0;
  for (;;) {
    while (i < sql.length && /\s/.test(sql.charAt(i))) i++;
    if (sql.startsWith('/*', i)) {
      if (sql.startsWith('/*!', i) || sql.startsWith('/*M!', i)) return -1;
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) return sql.length;
      i = end + 2;
    } else if (sql.startsWith('#', i) || (sql.startsWith('--', i) && /[\s]/.test(sql.charAt(i + 2) || ' '))) {
      const end = sql.indexOf('\n', i);
      if (end < 0) return sql.length;
      i = end + 1;
    } else {
      return i;
    }
  }
}

/** True when `body` holds a `;` outside quotes, comments and identifiers that is followed by more text. */
function hasSecondStatement(body: string): boolean {
  let quote: string | undefined;
  for (let i = 0; i < body.length; i++) {
    const ch = body.charAt(i);
    if (quote !== undefined) {
      if (ch === '\\' && quote !== '`') i++;
      else if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === "'" || ch === '"' || ch === '`') quote = ch;
    else if (body.startsWith('/*', i)) {
      if (body.startsWith('/*!', i) || body.startsWith('/*M!', i)) return true; // executable: cannot tell
      const end = body.indexOf('*/', i + 2);
      if (end < 0) return false;
      i = end + 1;
    } else if (ch === '#' || (body.startsWith('--', i) && /\s/.test(body.charAt(i + 2) || ' '))) {
      const end = body.indexOf('\n', i);
      if (end < 0) return false;
      i = end;
    } else if (ch === ';') {
      const rest = body.slice(i + 1);
      const next = skipLeading(rest);
      if (next < 0) return true;
      if (rest.slice(next).replace(/;/g, '').trim().length > 0) return true;
    }
  }
  return false;
}

/**
 * The statements of a multi-statement text: split at each `;` outside quotes, identifiers and
 * comments (as `hasSecondStatement` reads them). An executable comment (`/*!`, `/*M!`) is kept
 * inside the statement it is in.
 */
export function splitStatements(sql: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quote: string | undefined;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql.charAt(i);
    if (quote !== undefined) {
      if (ch === '\\' && quote !== '`') i++;
      else if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === "'" || ch === '"' || ch === '`') quote = ch;
    else if (sql.startsWith('/*', i)) {
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) break;
      i = end + 1;
    } else if (ch === '#' || (sql.startsWith('--', i) && /\s/.test(sql.charAt(i + 2) || ' '))) {
      const end = sql.indexOf('\n', i);
      if (end < 0) break;
      i = end;
    } else if (ch === ';') {
      parts.push(sql.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(sql.slice(start));
  return parts;
}

/**
 * True when a statement text would end or restart the open transaction (`START TRANSACTION`,
 * `BEGIN`, `COMMIT`, `ROLLBACK`, not `ROLLBACK TO SAVEPOINT`), in any statement of a
 * multi-statement text when the connection accepts those.
 */
export function controlsTransactionText(sql: string, multipleStatements: boolean): boolean {
  const effect = statementInfo(sql, multipleStatements).effect;
  if (effect === 'begin' || effect === 'end') return true;
  if (effect !== 'unknown') return false;
  if (multipleStatements && sql.includes(';')) return splitStatements(sql).some(controlsOne);
  return controlsOne(sql);
}

/** `controlsTransactionText` for one statement. */
function controlsOne(sql: string): boolean {
  const effect = classifyStatement(sql, false);
  if (effect === 'begin' || effect === 'end') return true;
  if (effect !== 'unknown') return false;
  // `COMMIT … RELEASE` / `ROLLBACK … RELEASE` end the transaction, then the connection.
  const start = skipLeading(sql);
  return start >= 0 && /^(COMMIT|ROLLBACK)\b/i.test(sql.slice(start));
}

/**
 * What a SQL text does to the transaction state. `multipleStatements` says whether the connection
 * accepts several statements in one string (mysql2 option of that name).
 */
export function classifyStatement(sql: string, multipleStatements = false): StatementEffect {
  const start = skipLeading(sql);
  if (start < 0) return 'unknown';
  const body = sql.slice(start);
  if (multipleStatements && hasSecondStatement(body)) return 'unknown';
  // Runs on every statement: most need only their first word (SELECT, INSERT …), read here
  // without normalising the whole text. The word must end at an ASCII character (or the end):
  // then it is exactly what the full path below would find.
  const word = LEADING_WORD.exec(body)?.[0];
  if (word !== undefined && !(body.charCodeAt(word.length) > 0x7f)) {
    const upper = word.toUpperCase();
    if (!NEEDS_FULL_TEXT.has(upper)) {
      if (NONE_KEYWORDS.has(upper)) return 'none';
      if (IMPLICIT_COMMIT_KEYWORDS.has(upper)) return 'implicit_commit';
      return 'unknown';
    }
  }
  const text = body.replace(/\s+/g, ' ').toUpperCase();
  const first = /^[A-Z_]+/.exec(text)?.[0];
  if (first === undefined) return 'unknown';
  switch (first) {
    case 'BEGIN':
      // `BEGIN NOT ATOMIC … END` is a MariaDB compound statement, not a transaction start.
      return /^BEGIN( WORK)?\s*;?\s*$/.test(text) ? 'begin' : 'unknown';
    case 'START':
      return /^START TRANSACTION\b/.test(text) ? 'begin' : 'implicit_commit';
    case 'COMMIT':
    case 'ROLLBACK': {
      if (first === 'ROLLBACK' && /^ROLLBACK( WORK)? TO\b/.test(text)) return 'none';
      if (/\bAND CHAIN\b/.test(text)) return 'begin';
      if (/\bRELEASE\b/.test(text) && !/\bNO RELEASE\b/.test(text)) return 'unknown'; // disconnects
      return 'end';
    }
    case 'SET':
      if (/\bAUTOCOMMIT\b/.test(text) || /^SET (PASSWORD|STATEMENT)\b/.test(text)) return 'implicit_commit';
      return 'none';
    case 'XA':
    case 'CALL':
    case 'EXECUTE':
      return 'unknown';
    default:
      if (NONE_KEYWORDS.has(first)) return 'none';
      if (IMPLICIT_COMMIT_KEYWORDS.has(first)) return 'implicit_commit';
      return 'unknown';
  }
}

/**
 * What a statement does to the session beyond its transaction, as far as its text tells: `'session'`
 * when the next borrower of the connection would inherit it and could lose a write or a lock to it
 * (`LOCK TABLES`, `GET_LOCK()`, `CREATE TEMPORARY TABLE` shadowing a table, `USE`, a session
 * variable), `'next_tx'` for `SET TRANSACTION` without SESSION/GLOBAL (it applies to the next
 * transaction), `'none'` otherwise. `SET @user_variable` changes nothing a write depends on.
 */
export type SessionEffect = 'none' | 'session' | 'next_tx';

const SESSION_KEYWORDS: ReadonlySet<string> = new Set(['LOCK', 'FLUSH', 'USE', 'HANDLER', 'XA']);
const GET_LOCK = /\bGET_LOCK\s*\(/i;

export function classifySession(sql: string, multipleStatements = false): SessionEffect {
  const start = skipLeading(sql);
  if (start < 0) return 'session';
  const body = sql.slice(start);
  if (GET_LOCK.test(body)) return 'session';
  if (multipleStatements && hasSecondStatement(body)) {
    return /\b(SET|LOCK|FLUSH|USE|HANDLER|XA|TEMPORARY)\b/i.test(body) ? 'session' : 'none';
  }
  const word = LEADING_WORD.exec(body)?.[0]?.toUpperCase();
  if (word === undefined) return 'none';
  if (SESSION_KEYWORDS.has(word)) return 'session';
  if (word === 'CREATE') return /^CREATE\s+(OR\s+REPLACE\s+)?TEMPORARY\b/i.test(body) ? 'session' : 'none';
  if (word !== 'SET') return 'none';
  const text = body.replace(/\s+/g, ' ').toUpperCase();
  if (/^SET TRANSACTION\b/.test(text)) return 'next_tx';
  // User variables only (`SET @a = 1, @b := 2`): no system variable, nothing a write depends on.
  if (/^SET @[^@]/.test(text) && !/@@|,\s*[^@\s]/.test(text)) return 'none';
  return 'session';
}

/** A statement's transaction and session effects, remembered together (see statementInfo). */
export interface StatementInfo {
  readonly effect: StatementEffect;
  readonly session: SessionEffect;
}

const INFOS = new Map<string, StatementInfo>();
function infoOf(effect: StatementEffect, session: SessionEffect): StatementInfo {
  const key = `${effect}/${session}`;
  let info = INFOS.get(key);
  if (info === undefined) {
    info = Object.freeze({ effect, session });
    INFOS.set(key, info);
  }
  return info;
}

/**
 * `classifyStatement` and `classifySession` for the statements a connection sends, remembered by
 * text: applications send the same few texts over and over (placeholders keep values out of them),
 * and one Map lookup by a string whose hash V8 keeps costs a fraction of reading the text again.
 * Bounded in entries and in text length; cleared when full (texts built with values in them only
 * churn it).
 */
const EFFECT_CACHE_ENTRIES = 512;
const EFFECT_CACHE_TEXT_LENGTH = 1_024;
const effectsSingle = new Map<string, StatementInfo>();
const effectsMultiple = new Map<string, StatementInfo>();

function classifyBoth(sql: string, multipleStatements: boolean): StatementInfo {
  return infoOf(classifyStatement(sql, multipleStatements), classifySession(sql, multipleStatements));
}

/** @internal Exported for tests. */
export function statementInfo(sql: string, multipleStatements: boolean): StatementInfo {
  if (sql.length > EFFECT_CACHE_TEXT_LENGTH) return classifyBoth(sql, multipleStatements);
  const cache = multipleStatements ? effectsMultiple : effectsSingle;
  let info = cache.get(sql);
  if (info === undefined) {
    info = classifyBoth(sql, multipleStatements);
    if (cache.size >= EFFECT_CACHE_ENTRIES) cache.clear();
    cache.set(sql, info);
  }
  return info;
}

/** @internal Exported for tests. */
export function statementEffect(sql: string, multipleStatements: boolean): StatementEffect {
  return statementInfo(sql, multipleStatements).effect;
}


/** @internal The caller of `entry`, captured the way mysql2's `trace` does (formatted only if an error needs it). */
export function captureCaller(entry: Function): CallerStack {
  const holder: CallerStack = {};
  Error.captureStackTrace(holder, entry);
  return holder;
}

/** @internal mysql2's `trace`: the error keeps its message and fields; its frames become the caller's. */
export function applyCallerStack(err: unknown, holder: CallerStack | undefined): void {
  const stack = holder?.stack;
  if (typeof stack !== 'string' || !(err instanceof Error)) return;
  const lines = stack.split('\n');
  lines[0] = `${err.name}: ${err.message}`;
  err.stack = lines.join('\n');
}
