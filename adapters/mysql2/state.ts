/**
 * Per-connection state, keyed by the promise connection the pool holds: the transaction status as
 * the OK packets and the statements sent tell it, autocommit, and the session changes the next
 * borrower must not inherit.
 */
import { type SessionEffect, type StatementEffect } from './statements';
import type { CoreConnection } from './core';
import { markSessionChanged } from '../../src/session-mark';

export const SERVER_STATUS_IN_TRANS = 0x0001;
export const SERVER_STATUS_AUTOCOMMIT = 0x0002;

export interface ConnState {
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

export const states = new WeakMap<object, ConnState>();
export const stateOfCore = new WeakMap<CoreConnection, ConnState>();

/** The SQL text of a `query`/`execute` first argument: a string or a `{ sql }` options object. */
export function sqlOf(firstArg: unknown): string | undefined {
  if (typeof firstArg === 'string') return firstArg;
  if (firstArg !== null && typeof firstArg === 'object') {
    const sql = (firstArg as { sql?: unknown }).sql;
    if (typeof sql === 'string') return sql;
  }
  return undefined;
}

/** A mysql2 `ResultSetHeader` (the OK packet of a statement): carries `serverStatus`. */
export function isHeader(value: unknown): value is { serverStatus: number } {
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
export function finalHeader(result: unknown): { serverStatus: number } | undefined {
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
export function noteSession(state: ConnState, session: SessionEffect): void {
  if (session === 'session') state.sessionChanged = true;
  else if (session === 'next_tx') state.pendingTxCharacteristics = true;
  markSession(state);
}

/** Keep the connection's mark in step with its state (a property read at release, not a WeakMap lookup). */
export function markSession(state: ConnState): void {
  markSessionChanged(
    state.promise,
    state.sessionChanged ||
      state.pendingTxCharacteristics ||
      (state.autocommit !== undefined && state.defaultAutocommit !== undefined && state.autocommit !== state.defaultAutocommit),
  );
}

/** Record a statement about to be sent. Effects that end a transaction wait for the server's word. */
export function noteSent(state: ConnState, effect: StatementEffect): void {
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
export function noteResult(state: ConnState, result: unknown): void {
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
export function noteSessionReset(state: ConnState): void {
  state.status = 'idle';
  state.autocommit = state.defaultAutocommit;
  state.opaque = false;
  state.sessionChanged = false;
  state.pendingTxCharacteristics = false;
  markSession(state);
}

export function driverBusy(core: CoreConnection): boolean {
  return (core._command !== undefined && core._command !== null) || (core._commands?.length ?? 0) > 0;
}

export function isDead(core: CoreConnection): boolean {
  return Boolean(core._fatalError) || Boolean(core._protocolError) || Boolean(core._closing) || core.stream.destroyed;
}
