/**
 * Errors: which mysql2 / server errors mean the connection is gone (fatal), which a transaction
 * may be retried after, which end the whole transaction on the server; and how a failure is
 * described without a secret.
 */
import { SOCKET_GONE_CODES } from '../../src/errors';
import { redact } from '../../src/redact';

/**
 * Errors with which the server has rolled back the whole transaction, not just the statement:
 * 1213 ER_LOCK_DEADLOCK, 1614 ER_XA_RBDEADLOCK, 3101 ER_TRANSACTION_ROLLBACK_DURING_COMMIT.
 */
export const SERVER_ROLLBACK_ERRNOS: ReadonlySet<number> = new Set([1213, 1614, 3101]);

/** mysql2's and the server's codes after which the connection is gone, and the socket's. */
export const FATAL_CODES: ReadonlySet<string> = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'PROTOCOL_PACKETS_OUT_OF_ORDER',
  'PROTOCOL_UNEXPECTED_PACKET',
  'PROTOCOL_ENQUEUE_AFTER_QUIT',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
  ...SOCKET_GONE_CODES,
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

export const FATAL_ERRNOS = new Set([
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

export const FATAL_MESSAGES = [
  "Can't add new command when connection is in closed state",
  "Can't write in closed state",
  'Connection lost',
];

export function errorFields(err: unknown): { code?: unknown; errno?: unknown; fatal?: unknown; message?: unknown; cause?: unknown } {
  return err !== null && typeof err === 'object' ? (err as Record<string, unknown>) : {};
}

/** Walk `err` and its `cause` chain (a few levels), stopping at the first match. */
export function someInChain(err: unknown, test: (e: ReturnType<typeof errorFields>) => boolean): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current !== null && typeof current === 'object'; depth++) {
    const fields = errorFields(current);
    if (test(fields)) return true;
    current = fields.cause;
  }
  return false;
}

export function isFatalError(err: unknown): boolean {
  return someInChain(err, (e) => {
    if (e.fatal === true) return true;
    if (typeof e.code === 'string' && FATAL_CODES.has(e.code)) return true;
    if (typeof e.errno === 'number' && FATAL_ERRNOS.has(e.errno)) return true;
    const message = e.message;
    return typeof message === 'string' && FATAL_MESSAGES.some((m) => message.startsWith(m));
  });
}

export function isRetryableError(err: unknown, lockWaitTimeout: boolean): boolean {
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
export function localError(err: unknown): unknown {
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

export function describeCode(err: unknown): string {
  const { code, errno } = errorFields(err);
  if (typeof code === 'string' && code.length > 0) return ` (${code})`;
  if (typeof errno === 'number') return ` (errno ${errno})`;
  return '';
}

/** `: <the driver's or server's text> (<code>)`, redacted: what a connect failure says, as pg's does. */
export function describeFailure(err: unknown, secrets: readonly string[]): string {
  const message = (err as { message?: unknown } | null)?.message;
  const text = typeof message === 'string' && message.length > 0 ? `: ${redact(message, secrets)}` : '';
  return `${text}${describeCode(err)}`;
}
