/**
 * Every error leasepool throws is an exported class with a stable `code`.
 * Messages never contain passwords (see `redact.ts`).
 */

/** Base class: `code` is stable across versions; match on it, not on messages. */
export class LeasepoolError extends Error {
  readonly code: string;
  /**
   * True on the error a lease's holder gets when the pool took the lease back (its deadline, or
   * `close()`) while a statement it had sent outside a transaction was still running: that
   * statement may have been applied (an autocommit write), as after a lost connection. Inside a
   * transaction the rollback undoes it, and this stays false.
   */
  readonly statementInFlight: boolean = false;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** @internal Mark `err` (a revoke reason) as told while a statement outside a transaction was running. */
export function markStatementInFlight(err: LeasepoolError): void {
  (err as { statementInFlight: boolean }).statementInFlight = true;
  err.message += ' while a statement sent outside a transaction was running: it may have been applied';
}

/** Invalid pool or transaction options. `fields` names every bad field. */
export class ConfigError extends LeasepoolError {
  readonly fields: readonly string[];
  constructor(problems: readonly { field: string; problem: string }[]) {
    super('INVALID_CONFIG', `Invalid leasepool options: ${problems.map((p) => `${p.field} ${p.problem}`).join('; ')}`);
    this.fields = problems.map((p) => p.field);
  }
}

/** Opening a connection failed; `cause` is the (redacted) driver error. */
export class ConnectError extends LeasepoolError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CONNECT_FAILED', message, options);
  }
}

/** The pool is closing or closed. */
export class PoolClosedError extends LeasepoolError {
  constructor(poolName: string) {
    super('POOL_CLOSED', `Pool "${poolName}" is closed`);
  }
}

/** No connection became available before the acquire deadline. */
export class AcquireTimeoutError extends LeasepoolError {
  readonly timeoutMs: number;
  constructor(poolName: string, timeoutMs: number, stats: { size: number; active: number; idle: number; pending: number; max: number }) {
    super(
      'ACQUIRE_TIMEOUT',
      `Pool "${poolName}": no connection available within ${timeoutMs} ms ` +
        `(total=${stats.size}, active=${stats.active}, idle=${stats.idle}, waiting=${stats.pending}, max=${stats.max})`,
    );
    this.timeoutMs = timeoutMs;
  }
}

/** `maxWaiting` callers are already queued. */
export class PoolQueueFullError extends LeasepoolError {
  constructor(poolName: string, maxWaiting: number) {
    super('POOL_QUEUE_FULL', `Pool "${poolName}": ${maxWaiting} callers already waiting (maxWaiting)`);
  }
}

/** The lease was released; its connection may not be used any more. */
export class LeaseReleasedError extends LeasepoolError {
  /** `message` replaces the default text (the adapter's `doubleReleaseMessage`, a driver's own wording). */
  constructor(leaseId: number, message?: string) {
    super('LEASE_RELEASED', message ?? `Lease #${leaseId} was released; its connection can no longer be used`);
  }
}

/** The pool took the lease back (deadline, leak reclaim, shutdown). */
export class LeaseRevokedError extends LeasepoolError {
  readonly reason: string;
  constructor(leaseId: number, reason: string) {
    super('LEASE_REVOKED', `Lease #${leaseId} was revoked by the pool (${reason}); its connection can no longer be used`);
    this.reason = reason;
  }
}

/** A scoped lease or transaction outlived its deadline (`timeoutMs` / `leaseTimeoutMs`). */
export class LeaseTimeoutError extends LeasepoolError {
  readonly timeoutMs: number;
  constructor(leaseId: number, timeoutMs: number) {
    super('LEASE_TIMEOUT', `Lease #${leaseId} exceeded its deadline of ${timeoutMs} ms and was revoked`);
    this.timeoutMs = timeoutMs;
  }
}

/** Acquiring would wait forever: this async context already holds a lease of the exhausted pool. */
export class NestedAcquireError extends LeasepoolError {
  constructor(poolName: string) {
    super(
      'NESTED_ACQUIRE',
      `Pool "${poolName}": this async context already holds a lease and no connection is free; ` +
        'waiting would deadlock. Use the ambient lease (withLease/withTx join it) or raise max.',
    );
  }
}

/** The connection was lost during COMMIT: the transaction may or may not have committed. */
export class TxOutcomeUnknownError extends LeasepoolError {
  constructor(options?: { cause?: unknown }, message = 'The connection was lost during COMMIT; the transaction outcome is unknown') {
    super('TX_OUTCOME_UNKNOWN', message, options);
  }
}

/**
 * The database ended the transaction as rolled back while the `withTx` body went on: a failed
 * statement aborted it (PostgreSQL), the server rolled it back whole (MySQL deadlock, lock wait
 * timeout with `innodb_rollback_on_timeout`), or COMMIT was answered with ROLLBACK. Nothing of it
 * was committed; statements sent through the lease afterwards are refused with this error, and
 * `cause` is the database's own error when there was one.
 */
export class TxAbortedError extends LeasepoolError {
  constructor(message = 'The transaction was aborted by the database (a failed statement); it was rolled back, not committed', options?: { cause?: unknown }) {
    super('TX_ABORTED', message, options);
  }
}

/**
 * A statement (or a nested `withTx`) came from a scope whose transaction or savepoint has already
 * ended: an un-awaited statement or scope outlived the body that started it. It was refused, so
 * nothing it sends can run outside the transaction it belonged to.
 */
export class TxEndedError extends LeasepoolError {
  constructor(message = 'The transaction this scope belonged to has ended; the statement was refused') {
    super('TX_ENDED', message);
  }
}

/** Concurrent misuse of one lease, e.g. using a connection from another pool. */
export class LeaseMisuseError extends LeasepoolError {
  constructor(message: string) {
    super('LEASE_MISUSE', message);
  }
}

/** Only deferred cleanups failed (the body succeeded): all their errors, in the order they ran. */
export class CleanupError extends LeasepoolError {
  readonly errors: readonly unknown[];
  constructor(errors: readonly unknown[]) {
    super('CLEANUP_FAILED', `${errors.length} deferred cleanup(s) failed: ${errors.map(describe).join('; ')}`, {
      cause: errors[0],
    });
    this.errors = errors;
  }
}

/**
 * Shape of an error whose cleanups also failed, like TC39's `SuppressedError`:
 * the body's error is kept as the thing thrown, and cleanup errors hang off it.
 */
export interface WithSuppressed {
  suppressed?: unknown[];
}

/**
 * Attach cleanup errors to the body's error without replacing it.
 * Primitives thrown as errors cannot carry properties; they are returned unchanged.
 */
export function attachSuppressed(error: unknown, suppressed: readonly unknown[]): void {
  if (suppressed.length === 0 || error === null || typeof error !== 'object') return;
  // A frozen or sealed error (or one whose `suppressed` is read-only) keeps its identity: the
  // caller gets its own error object; the cleanup errors are still logged and counted by the pool.
  try {
    const holder = error as WithSuppressed;
    if (Array.isArray(holder.suppressed)) {
      holder.suppressed.push(...suppressed);
      return;
    }
    Object.defineProperty(error, 'suppressed', { value: [...suppressed], enumerable: false, writable: true, configurable: true });
  } catch {
    // not extensible: nothing to attach to
  }
}

/** Errors attached to `error` by `attachSuppressed` (cleanup or rollback failures). */
export function suppressedErrors(error: unknown): readonly unknown[] {
  if (error === null || typeof error !== 'object') return [];
  const list = (error as WithSuppressed).suppressed;
  return Array.isArray(list) ? list : [];
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Socket-level error codes (Node's, on any driver's socket) after which a connection is gone. Each
 * adapter adds its driver's own codes.
 */
export const SOCKET_GONE_CODES: readonly string[] = [
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTCONN',
  'ERR_STREAM_DESTROYED',
  'ERR_SOCKET_CLOSED',
];
