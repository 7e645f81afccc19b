/**
 * One open transaction or savepoint on a lease (a frame), also the `tx` handed to the `withTx`
 * callback; when a frame has ended, nothing started inside it may send another statement.
 */
import type { Adapter, BeginOptions } from './adapter';
import { TxEndedError } from './errors';
import type { Lease } from './lease';
import type { LeaseRecord } from './lease-record';

/** Handed to the `withTx` callback. */
export interface Transaction<C extends object = object> {
  readonly lease: Lease<C>;
  /** 1 for the top-level transaction, 2+ for savepoints. */
  readonly depth: number;
  /** 1 for the first run, 2+ for retries. */
  readonly attempt: number;
  /** Savepoint name of a nested transaction. */
  readonly savepoint: string | undefined;
  /** Aborted if the pool revokes the lease (deadline, shutdown). */
  readonly signal: AbortSignal;
}

/** One open transaction or savepoint on a lease; also the `tx` handed to the callback. */
export class TxFrame<C extends object = object> implements Transaction<C> {
  /** Serialises child savepoints: concurrent nested scopes never interleave. */
  tail: Promise<void> | undefined = undefined;
  /**
   * Set when the frame's COMMIT / RELEASE or ROLLBACK is about to be sent: from then on nothing
   * started inside the frame may send a statement (it would run outside the transaction).
   */
  ended = false;
  /** Statements refused because they came from inside this frame after it ended. */
  refused = 0;
  /** The top-level frame of this transaction (itself at depth 1). */
  readonly root: TxFrame<C>;
  constructor(
    readonly lease: Lease<C>,
    readonly depth: number,
    readonly attempt: number,
    readonly savepoint: string | undefined,
    /** The top-level transaction's BEGIN options; savepoints run under them. */
    readonly begin: BeginOptions,
    readonly parent: TxFrame<C> | undefined,
  ) {
    this.root = parent === undefined ? this : parent.root;
  }
  get signal(): AbortSignal {
    return this.lease.signal;
  }
}

/** True when `frame` or one of the frames it is nested in has ended. */
export function frameEnded(frame: TxFrame<object>): boolean {
  for (let f: TxFrame<object> | undefined = frame; f !== undefined; f = f.parent) if (f.ended) return true;
  return false;
}

/** End `frame`: scopes started inside it are cut off from the connection from now on. */
export function endFrame<C extends object>(record: LeaseRecord<C>, frame: TxFrame<C>): void {
  frame.ended = true;
  record.checkScopes = true;
}

/** The error a scope started inside an ended transaction gets. */
export function txEndedError(frame: TxFrame<object>, leaseId: number): TxEndedError {
  const what = frame.savepoint === undefined ? 'transaction' : `savepoint ${frame.savepoint}`;
  return new TxEndedError(
    `The ${what} on lease #${leaseId} has ended; a statement or nested withTx started inside it and still running was refused (await every statement and nested scope before the withTx body returns or throws)`,
  );
}

/**
 * What a failed statement through `lease.conn` means for the lease: a fatal error breaks the
 * connection; inside a transaction, one that took the connection with it, or one with which the
 * server rolled the whole transaction back, loses the transaction (nothing may commit after it);
 * while a body waits for its un-awaited work, the first failure is kept for it.
 */
export function noteStatementError<C extends object>(adapter: Adapter<C>, record: LeaseRecord<C>, err: unknown): void {
  if (adapter.isFatal(err)) {
    record.connection.markBroken(err);
    if (record.txDepth > 0) record.txLost ??= err;
  } else if (record.txDepth > 0 && adapter.endsTransaction?.(err) === true) record.txLost ??= err;
  if (record.draining > 0) record.drainError ??= err;
}

/**
 * The error for a nested scope (withTx, withLease) started inside `frame` after it or a frame it is
 * nested in has ended: counted as refused work of that frame and of its transaction, as a refused
 * statement is (see `Pool.scopeEnded`), so that a COMMIT waiting to see late work does not go ahead.
 */
export function refusedScope(frame: TxFrame<object>, leaseId: number): TxEndedError {
  let ended = frame;
  for (let f: TxFrame<object> | undefined = frame; f !== undefined; f = f.parent) {
    if (f.ended) {
      ended = f;
      break;
    }
  }
  ended.refused++;
  if (ended.root !== ended) ended.root.refused++;
  return txEndedError(ended, leaseId);
}
