/**
 * Transactions: `withTx` opens a transaction on its own lease or joins the ambient one;
 * nested calls become savepoints on the same connection; retryable failures of a top-level
 * transaction rerun it with backoff; a connection lost during COMMIT is reported as an
 * unknown outcome, never retried. What a body may leave behind (un-awaited statements and
 * scopes, caught errors) is waited for or cut off before the transaction ends.
 */
import type { Adapter, TxStatus } from './adapter';
import { enterScope, findAmbient, joinRefusal, leaveScope } from './context';
import { attachSuppressed, TxAbortedError, TxOutcomeUnknownError } from './errors';
import type { CallSite, Lease } from './lease';
import type { LeaseRecord } from './lease-record';
import type { MetricsSink } from './metrics';
import { endFrame, frameEnded, TxFrame, txEndedError, type Transaction } from './tx-frame';
import { checkNestedOptions, resolveTxOptions, type ResolvedTxOptions, type TxOptions } from './tx-options';
import type { PoolTracer, TxSpan } from './telemetry/types';
import { now, sleep } from './time';

export type { Transaction } from './tx-frame';
export type { TxOptions } from './tx-options';

/** What transactions need from the pool (the pool implements it; this module never imports the pool). */
export interface TxHost<C extends object> {
  readonly adapter: Adapter<C>;
  readonly metrics: MetricsSink;
  readonly tracer: PoolTracer | undefined;
  readonly options: { readonly acquireTimeoutMs: number };
  acquireLease(timeoutMs: number, signal: AbortSignal | undefined, site: CallSite | undefined, holdTimeoutMs: number | undefined, trackDrop: boolean): Promise<Lease<C>>;
  runAndRelease<R>(leaseOrAcquire: Lease<C> | Promise<Lease<C>>, body: (lease: Lease<C>) => R | PromiseLike<R>): Promise<R>;
  noteError(record: LeaseRecord<C>, err: unknown): void;
}


type TxBody<C extends object, R> = (conn: C, tx: Transaction<C>) => R | PromiseLike<R>;

/**
 * `pool.withTx` / `withTx(pool, …)`. `site` is the caller's acquire site for leak reports.
 * Not an async function: the lease's acquire feeds the scope directly (one promise fewer, and one
 * microtask turn fewer before BEGIN); synchronous failures still reject, never throw.
 */
export function runTransaction<C extends object, R>(
  pool: TxHost<C>,
  fn: TxBody<C, R>,
  options: TxOptions | undefined,
  site: CallSite | undefined,
): Promise<R> {
  try {
    const opts = resolveTxOptions(options);
    pool.adapter.validateBegin?.(opts.begin);
    const ambient = findAmbient(pool);
    const tracer = pool.tracer;
    if (ambient !== undefined) {
      const lease = ambient.lease;
      const record = lease.record;
      if (opts.propagation === 'required') {
        const refused = joinRefusal(ambient);
        if (refused !== undefined) throw refused;
        const frame = ambient.frame;
        if (frame !== undefined) {
          checkNestedOptions(opts.begin, frame.begin);
          if (tracer !== undefined) return tracer.transaction(frame.begin, frame.depth + 1, () => serialized(frame, () => savepoint(pool, lease, frame, fn)));
          return serialized(frame, () => savepoint(pool, lease, frame, fn));
        }
        if (tracer !== undefined) return tracer.transaction(opts.begin, 1, (span) => serialized(record, () => topLevel(pool, lease, fn, opts, span)));
        return serialized(record, () => topLevel(pool, lease, fn, opts, undefined));
      }
      // A body the pool took back (deadline, close) is abandoned: it starts nothing new either.
      if (record.state === 'revoked') throw record.useError();
    }
    // Traced, the span is the active context of the acquire (its wait is a child span) and of the body.
    if (tracer !== undefined) return tracer.transaction(opts.begin, 1, (span) => ownLease(pool, fn, opts, site, span));
    return ownLease(pool, fn, opts, site, undefined);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** A top-level transaction on a lease of its own. */
function ownLease<C extends object, R>(pool: TxHost<C>, fn: TxBody<C, R>, opts: ResolvedTxOptions, site: CallSite | undefined, span: TxSpan | undefined): Promise<R> {
  const timeoutMs = opts.acquireTimeoutMs ?? pool.options.acquireTimeoutMs;
  const acquired =
    span === undefined
      ? pool.acquireLease(timeoutMs, opts.signal, site, opts.timeoutMs, false)
      : span.acquire(() => pool.acquireLease(timeoutMs, opts.signal, site, opts.timeoutMs, false));
  return pool.runAndRelease(acquired, (l) => topLevel(pool, l, fn, opts, span));
}

async function topLevel<C extends object, R>(pool: TxHost<C>, lease: Lease<C>, fn: TxBody<C, R>, opts: ResolvedTxOptions, span: TxSpan | undefined): Promise<R> {
  const record = lease.record;
  const { adapter, metrics } = pool;
  const raw = record.connection.raw;
  for (let attempt = 1; ; attempt++) {
    ensureActive(record);
    const startedAt = now();
    try {
      for (const statement of adapter.sql.begin(opts.begin)) {
        // BEGIN may be several statements (MySQL: SET TRANSACTION, START TRANSACTION). One sent
        // after the lease ended would open a transaction on a connection already back in the pool.
        ensureActive(record);
        await adapter.exec(raw, statement);
      }
    } catch (err) {
      pool.noteError(record, err);
      throw err;
    }
    record.txDepth = 1;
    record.txLost = undefined;
    const frame = new TxFrame(lease, 1, attempt, undefined, opts.begin, undefined);
    let result: R;
    try {
      // The body is called here, not through a helper: a driver that captures a stack per
      // statement (mysql2) pays for every frame between us and it (see enterScope).
      const previous = enterScope(pool, lease as Lease<object>, frame as TxFrame<object>);
      let body: R | PromiseLike<R>;
      try {
        body = fn(lease.conn, frame);
      } finally {
        leaveScope(previous);
      }
      result = await body;
      // Only a body that left work running pays for waiting on it (an async call per transaction is not free).
      if (frame.tail !== undefined || record.inflight > 0) await settleScopes(record, frame);
      else endFrame(record, frame);
      // The body caught an error after which the server had ended the transaction (a MySQL
      // deadlock, a lost connection): what it did afterwards was refused; nothing may commit.
      if (record.txLost !== undefined) throw record.txLost;
    } catch (thrown) {
      endFrame(record, frame);
      record.txDepth = 0;
      const lost = record.txLost;
      record.txLost = undefined;
      // A statement the pool refused because the transaction was lost stands for the loss itself
      // (a deadlock is then retried as it would have been had the body not caught it).
      const error = lost !== undefined && thrown instanceof TxAbortedError ? lost : thrown;
      if (lost === undefined && endedInBody(adapter, raw)) {
        // A statement of the body ended the transaction (MySQL's implicit commit at DDL, a raw
        // COMMIT): nothing is left to roll back, and a rerun would repeat work that may be committed.
        metrics.transaction('rollback', (now() - startedAt) / 1000);
        throw withAttempts(error, attempt);
      }
      if (await rolledBackForRetry(pool, record, error, opts, attempt, startedAt, span)) continue;
      throw withAttempts(error, attempt);
    }
    // Nothing started inside the body may send a statement from here on: it would land after COMMIT.
    endFrame(record, frame);
    // The body caught a failed statement and returned: the database has aborted the transaction
    // and PostgreSQL would answer COMMIT with a silent ROLLBACK. Never report that as a commit.
    let status = adapter.txStatus?.(raw);
    if (status === 'unknown' && adapter.settle !== undefined) status = await settledStatus(adapter, raw);
    if (record.state === 'active' && status === 'failed') {
      const error = new TxAbortedError(
        'The transaction was aborted by a statement that failed inside withTx (its error was caught or not awaited); it was rolled back, not committed',
      );
      record.txDepth = 0;
      await rolledBackForRetry(pool, record, error, opts, attempt, startedAt); // never retryable
      throw withAttempts(error, attempt);
    }
    // Never commit on a lease the pool has revoked: its deadline passed, the work is abandoned.
    if (record.state !== 'active') {
      record.txDepth = 0;
      throw record.useError();
    }
    record.committing = true;
    const commitAt = span === undefined ? 0 : now();
    let reply: unknown;
    try {
      reply = await adapter.exec(raw, adapter.sql.commit);
      span?.committed(commitAt);
      record.committing = false;
      record.txDepth = 0;
    } catch (error) {
      span?.committed(commitAt, error);
      record.committing = false;
      record.txDepth = 0;
      if (adapter.isFatal(error) || record.connection.broken) {
        record.connection.markBroken(error);
        metrics.transaction('unknown', (now() - startedAt) / 1000);
        throw new TxOutcomeUnknownError({ cause: error });
      }
      // COMMIT refused (serialization failure, deferred constraint): the server rolled back.
      if (await rolledBackForRetry(pool, record, error, opts, attempt, startedAt, span)) continue;
      throw withAttempts(error, attempt);
    }
    // The outcome of COMMIT is in its reply: PostgreSQL answers COMMIT in an aborted transaction
    // with the command tag ROLLBACK and no error.
    if (adapter.commitRolledBack?.(reply) === true) {
      metrics.transaction('rollback', (now() - startedAt) / 1000);
      throw withAttempts(new TxAbortedError('COMMIT was answered with ROLLBACK: the transaction had been aborted by the database; nothing was committed'), attempt);
    }
    metrics.transaction('commit', (now() - startedAt) / 1000);
    return result;
  }
}

async function savepoint<C extends object, R>(pool: TxHost<C>, lease: Lease<C>, parent: TxFrame<C>, fn: TxBody<C, R>): Promise<R> {
  const record = lease.record;
  const { adapter } = pool;
  const raw = record.connection.raw;
  ensureActive(record);
  // Queued behind a sibling, the parent may have ended (or lost its transaction) meanwhile.
  if (frameEnded(parent as TxFrame<object>)) throw txEndedError(parent as TxFrame<object>, record.id);
  if (record.txLost !== undefined) throw lostError(record);
  const name = `lp_sp_${++record.savepointSeq}`;
  try {
    await adapter.exec(raw, adapter.sql.savepoint(name));
  } catch (err) {
    pool.noteError(record, err);
    throw err;
  }
  // The transaction may have ended while SAVEPOINT was on the wire (an outer scope threw).
  if (frameEnded(parent as TxFrame<object>)) throw txEndedError(parent as TxFrame<object>, record.id);
  record.txDepth++;
  const frame = new TxFrame(lease, parent.depth + 1, parent.attempt, name, parent.begin, parent);
  try {
    const previous = enterScope(pool, lease as Lease<object>, frame as TxFrame<object>);
    let body: R | PromiseLike<R>;
    try {
      body = fn(lease.conn, frame);
    } finally {
      leaveScope(previous);
    }
    const result = await body;
    if (frame.tail !== undefined || record.inflight > 0) await settleScopes(record, frame);
    else endFrame(record, frame);
    ensureActive(record);
    if (record.txLost !== undefined) throw lostError(record);
    if (frameEnded(parent as TxFrame<object>)) throw txEndedError(parent as TxFrame<object>, record.id);
    // A savepoint does not outlive its transaction: after an implicit commit there is none to release.
    if (!endedInBody(adapter, raw)) await adapter.exec(raw, adapter.sql.releaseSavepoint(name));
    return result;
  } catch (error) {
    // Cut off by an outer frame that ended, or after the server ended the whole transaction:
    // there is no savepoint left to roll back to, and nothing may be sent in its name.
    const cutOff = frameEnded(parent as TxFrame<object>);
    endFrame(record, frame);
    if (!cutOff && record.txLost === undefined && record.state === 'active' && !record.connection.broken && !endedInBody(adapter, raw)) {
      try {
        await adapter.exec(raw, adapter.sql.rollbackToSavepoint(name));
        // Nothing is sent on a connection the lease no longer holds (released or reclaimed meanwhile).
        if (record.state === 'active') await adapter.exec(raw, adapter.sql.releaseSavepoint(name));
      } catch (rollbackError) {
        // The outer transaction can no longer be trusted: it must not commit, and the connection will be destroyed.
        record.connection.markBroken(rollbackError);
        record.txLost ??= rollbackError;
        attachSuppressed(error, [rollbackError]);
      }
    }
    // An outer body that has returned and is waiting for this scope must not commit without it.
    if (record.draining > 0) record.drainError ??= error;
    throw error;
  } finally {
    // A scope cut off after its transaction ended leaves the depth to the transaction that reset it.
    if (!frame.root.ended) record.txDepth--;
  }
}

/**
 * After a body has returned: wait for the nested scopes and statements it started and did not
 * await (they run on this transaction and must end before it does), then end the frame in the
 * same turn, so that nothing can slip in between. The first failure among them is thrown: the
 * transaction must not commit without the work that failed; so is late work (see noLateWork).
 */
async function settleScopes<C extends object>(record: LeaseRecord<C>, frame: TxFrame<C>): Promise<void> {
  const outer = record.drainError;
  record.drainError = undefined;
  record.draining++;
  try {
    for (;;) {
      while (frame.tail !== undefined) await frame.tail;
      if (record.inflight === 0 || record.state !== 'active') break;
      await new Promise<void>((resolve) => {
        record.onDrained = resolve;
      });
      record.onDrained = undefined;
    }
    endFrame(record, frame);
  } finally {
    record.onDrained = undefined;
    record.draining--;
  }
  const failed = record.drainError;
  record.drainError = outer;
  if (failed !== undefined) {
    throw new TxAbortedError(
      `A statement or nested withTx that the body did not await failed after it returned (${failed instanceof Error ? failed.message : String(failed)}); the transaction was rolled back, not committed`,
      { cause: failed },
    );
  }
  await noLateWork(frame);
}

/**
 * Un-awaited work the body left behind may still be sending, one statement after another (a
 * `.then` chain): give it one turn of the event loop to show itself. A statement refused from
 * inside the ended frame means part of the body's work was cut off: never commit without it.
 */
async function noLateWork(frame: TxFrame<object>): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  if (frame.refused > 0) {
    throw new TxAbortedError(
      'Work the body started and did not await was still sending statements after it returned; they were refused, and the transaction was rolled back, not committed',
    );
  }
}

/** What a scope of a transaction the server has ended gets. */
function lostError(record: LeaseRecord<object>): TxAbortedError {
  const cause = record.txLost;
  return new TxAbortedError(`The transaction on lease #${record.id} is over (${cause instanceof Error ? cause.message : String(cause)}); nothing more can run in it`, { cause });
}

/** The driver's transaction status, waited for when it is still on the wire (`settle`). */
async function settledStatus<C extends object>(adapter: Adapter<C>, raw: C): Promise<TxStatus | undefined> {
  let status = adapter.txStatus?.(raw);
  if (status === 'unknown' && adapter.settle !== undefined) {
    await adapter.settle(raw).catch(() => undefined);
    status = adapter.txStatus?.(raw);
  }
  return status;
}

/**
 * True when the driver knows the connection is out of any transaction although leasepool opened
 * one that it has not ended: a statement of the body ended it. `'unknown'` is not idle (when in
 * doubt, roll back).
 */
function endedInBody<C extends object>(adapter: Adapter<C>, raw: C): boolean {
  return adapter.txStatus?.(raw) === 'idle';
}

/** ROLLBACK after a failed body; a failing rollback is attached to the body's error and the connection destroyed. */
async function rollbackAfter<C extends object>(pool: TxHost<C>, record: LeaseRecord<C>, error: unknown): Promise<void> {
  if (record.state !== 'active' || record.connection.broken) return; // the release path destroys it
  try {
    await pool.adapter.exec(record.connection.raw, pool.adapter.sql.rollback);
  } catch (rollbackError) {
    record.connection.markBroken(rollbackError);
    attachSuppressed(error, [rollbackError]);
  }
}

/**
 * After a failed attempt: ROLLBACK and count it. True when the transaction is to be rerun
 * (retries left, a retryable error, the connection still ours and sound), after its backoff.
 */
async function rolledBackForRetry<C extends object>(
  pool: TxHost<C>,
  record: LeaseRecord<C>,
  error: unknown,
  opts: ResolvedTxOptions,
  attempt: number,
  startedAt: number,
  span?: TxSpan | undefined,
): Promise<boolean> {
  await rollbackAfter(pool, record, error);
  pool.metrics.transaction('rollback', (now() - startedAt) / 1000);
  // A TxAbortedError stands for the database error that aborted the transaction (its cause).
  const cause = error instanceof TxAbortedError ? error.cause : undefined;
  const retryable = pool.adapter.isRetryable(error) || (cause !== undefined && pool.adapter.isRetryable(cause));
  const retry = attempt <= opts.retries && record.state === 'active' && !record.connection.broken && retryable;
  if (!retry) return false;
  pool.metrics.transaction('retry', undefined);
  span?.retry(attempt, error);
  await sleep(backoffMs(opts, attempt));
  return true;
}

/** Exponential backoff with full jitter. */
function backoffMs(opts: ResolvedTxOptions, attempt: number): number {
  return Math.random() * Math.min(opts.retryMaxDelayMs, opts.retryBaseDelayMs * 2 ** (attempt - 1));
}

function withAttempts(error: unknown, attempts: number): unknown {
  if (error !== null && typeof error === 'object' && attempts > 1) {
    Object.defineProperty(error, 'attempts', { value: attempts, enumerable: false, configurable: true, writable: true });
  }
  return error;
}

function ensureActive(record: LeaseRecord<object>): void {
  if (record.state !== 'active') throw record.useError();
}

/** Run `task` after every earlier task queued on `holder` has finished. */
async function serialized<T>(holder: { tail: Promise<void> | undefined }, task: () => Promise<T>): Promise<T> {
  const previous = holder.tail;
  let unlock!: () => void;
  const mine = new Promise<void>((resolve) => {
    unlock = resolve;
  });
  holder.tail = mine;
  try {
    if (previous !== undefined) await previous;
    return await task();
  } finally {
    unlock();
    if (holder.tail === mine) holder.tail = undefined;
  }
}
