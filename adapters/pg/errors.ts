/**
 * Which pg errors mean the connection is gone (fatal); and the pg error kept behind a ConnectError
 * when it carries no secret, for the drop-in that hands out pg's own error objects.
 */
import { isFatalServerError } from '../../src/dialects/postgres';
import { ConnectError, SOCKET_GONE_CODES } from '../../src/errors';
import { redact } from '../../src/redact';

/**
 * The error pg (or an `onConnect` hook) produced, behind each `ConnectError` of this adapter: the
 * drop-in `Pool` hands pg-pool code that very object, as pg-pool does. Weak: it lives as long as
 * the ConnectError.
 */
export const DRIVER_ERRORS = new WeakMap<object, unknown>();

/**
 * @internal The error object pg (or the `onConnect` hook) produced behind a `ConnectError` of a pg
 * adapter, unredacted; `undefined` for any other error. For the drop-in `Pool`, which must hand
 * pg-pool code the very object pg produced.
 */
export function driverErrorOf(err: unknown): unknown {
  return err !== null && typeof err === 'object' ? DRIVER_ERRORS.get(err) : undefined;
}

/** Keep `original` behind `error` unless it carries a secret (then only the redacted copy exists). */
export function keepDriverError(error: ConnectError, original: unknown, secrets: readonly string[]): void {
  if (original === null || typeof original !== 'object') return;
  const fields = original as { message?: unknown; stack?: unknown; detail?: unknown; hint?: unknown };
  for (const value of [fields.message, fields.stack, fields.detail, fields.hint]) {
    if (typeof value === 'string' && redact(value, secrets) !== value) return;
  }
  DRIVER_ERRORS.set(error, original);
}

/** Socket-level error codes after which the connection is gone. */
export const FATAL_SOCKET_CODES: ReadonlySet<string> = new Set(SOCKET_GONE_CODES);

/**
 * Messages pg uses for a dead or closed client. `Query read timeout` (pg's `query_timeout`) is
 * included: the statement keeps running on the server, so the connection is busy and must not be reused.
 */
export const FATAL_MESSAGE_PREFIXES = [
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'Query read timeout',
];

export function isFatal(err: unknown): boolean {
  if (isFatalServerError(err)) return true;
  if (err === null || typeof err !== 'object') return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && FATAL_SOCKET_CODES.has(code)) return true;
  const message = (err as { message?: unknown }).message;
  return typeof message === 'string' && FATAL_MESSAGE_PREFIXES.some((prefix) => message.startsWith(prefix));
}
