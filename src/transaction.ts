/**
 * Transactions: `withTx` opens a transaction on its own lease or joins the ambient one;
 * nested calls become savepoints on the same connection; retryable failures of a top-level
 * transaction rerun it with backoff; a connection lost during COMMIT is reported as an
 * unknown outcome, never retried.
 */
import type { Adapter, BeginOptions, IsolationLevel, TxStatus } from './adapter';
import { enterScope, findAmbient, leaveScope } from './context';
import { attachSuppressed, ConfigError, TxAbortedError, TxEndedError, TxOutcomeUnknownError } from './errors';
import type { CallSite, Lease, LeaseRecord } from './lease';
import { check, show, unknownOption } from './options';
import type { Pool } from './pool';
import { now, sleep } from './time';

/** Options of `withTx`. */
export interface TxOptions {
  /** Isolation level of a top-level transaction. A nested `withTx` may repeat its outer transaction's value; a different one is a `ConfigError`. */
  isolation?: IsolationLevel | undefined;
  /** `READ ONLY` when true, `READ WRITE` when false. */
  readOnly?: boolean | undefined;
  /** PostgreSQL `DEFERRABLE` (only with serializable read-only); rejected on MySQL. */
  deferrable?: boolean | undefined;
  /** Reruns of a top-level transaction that failed with a retryable error (serialization failure, deadlock). Default 0. */
  retries?: number | undefined;
  /** First backoff before a retry; doubles each time, with full jitter. Default 10. */
  retryBaseDelayMs?: number | undefined;
  /** Longest backoff before a retry. Default 1 000. */
  retryMaxDelayMs?: number | undefined;
  /**
   * `'required'` (default): join the ambient transaction as a savepoint, or start one.
   * `'requiresNew'`: a separate connection and transaction, even inside another.
   */
  propagation?: 'required' | 'requiresNew' | undefined;
  /** Deadline for the whole transaction on its own lease: at expiry the lease is revoked and the call rejects with `LeaseTimeoutError`. */
  timeoutMs?: number | undefined;
  /** Longest wait for a connection, overriding the pool's `acquireTimeoutMs`. */
  acquireTimeoutMs?: number | undefined;
  /** Abort the wait for a connection. */
  signal?: AbortSignal | undefined;
}

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

interface ResolvedTxOptions {
  readonly begin: BeginOptions;
  readonly retries: number;
  readonly retryBaseDelayMs: number;
  readonly retryMaxDelayMs: number;
  readonly propagation: 'required' | 'requiresNew';
  readonly timeoutMs: number | undefined;
  readonly acquireTimeoutMs: number | undefined;
  readonly signal: AbortSignal | undefined;
}

const ISOLATION_LEVELS: ReadonlySet<string> = new Set<IsolationLevel>(['read uncommitted', 'read committed', 'repeatable read', 'serializable']);
const TX_KEYS: ReadonlySet<string> = new Set([
  'isolation',
  'readOnly',
  'deferrable',
  'retries',
  'retryBaseDelayMs',
  'retryMaxDelayMs',
  'propagation',
  'timeoutMs',
  'acquireTimeoutMs',
  'signal',
]);
const MAX_RETRIES = 100;

const DEFAULT_TX: ResolvedTxOptions = Object.freeze({
  begin: Object.freeze({}),
  retries: 0,
  retryBaseDelayMs: 10,
  retryMaxDelayMs: 1_000,
  propagation: 'required',
  timeoutMs: undefined,
  acquireTimeoutMs: undefined,
  signal: undefined,
});

/** Validate `withTx` options against allow-lists; throws one `ConfigError` naming every bad field. */
export function resolveTxOptions(input: TxOptions | undefined): ResolvedTxOptions {
  if (input === undefined) return DEFAULT_TX;
  const problems: { field: string; problem: string }[] = [];
  if (input === null || typeof input !== 'object') throw new ConfigError([{ field: 'txOptions', problem: `must be an object (got ${show(input)})` }]);
  for (const key of Object.keys(input)) if (!TX_KEYS.has(key)) problems.push({ field: key, problem: unknownOption(key, TX_KEYS, 'a known transaction option') });
  const { isolation, readOnly, deferrable, retries = 0, retryBaseDelayMs = 10, retryMaxDelayMs = 1_000, propagation = 'required' } = input;
  if (isolation !== undefined && !(typeof isolation === 'string' && ISOLATION_LEVELS.has(isolation))) {
    problems.push({ field: 'isolation', problem: `must be one of ${[...ISOLATION_LEVELS].map((l) => `'${l}'`).join(', ')} (got ${show(isolation)})` });
  }
  if (readOnly !== undefined) check.boolean(problems, 'readOnly', readOnly);
  if (deferrable !== undefined) check.boolean(problems, 'deferrable', deferrable);
  if (deferrable === true && (isolation !== 'serializable' || readOnly !== true)) {
    problems.push({ field: 'deferrable', problem: "only applies with isolation 'serializable' and readOnly: true" });
  }
  check.integer(problems, 'retries', retries, 0, false);
  if (typeof retries === 'number' && retries > MAX_RETRIES) problems.push({ field: 'retries', problem: `must be at most ${MAX_RETRIES}` });
  check.duration(problems, 'retryBaseDelayMs', retryBaseDelayMs, { allowZero: true, allowInfinity: false });
  check.duration(problems, 'retryMaxDelayMs', retryMaxDelayMs, { allowZero: true, allowInfinity: false });
  if (propagation !== 'required' && propagation !== 'requiresNew') {
    problems.push({ field: 'propagation', problem: `must be 'required' or 'requiresNew' (got ${show(propagation)})` });
  }
  if (input.timeoutMs !== undefined) check.duration(problems, 'timeoutMs', input.timeoutMs, { allowZero: false, allowInfinity: false });
  if (input.acquireTimeoutMs !== undefined) check.duration(problems, 'acquireTimeoutMs', input.acquireTimeoutMs, { allowZero: false, allowInfinity: true });
  if (input.signal !== undefined && !(input.signal instanceof AbortSignal)) problems.push({ field: 'signal', problem: 'must be an AbortSignal' });
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    begin: { isolation, readOnly, deferrable },
    retries,
    retryBaseDelayMs,
    retryMaxDelayMs,
    propagation,
    timeoutMs: input.timeoutMs,
    acquireTimeoutMs: input.acquireTimeoutMs,
    signal: input.signal,
  };
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
function frameEnded(frame: TxFrame<object>): boolean {
  for (let f: TxFrame<object> | undefined = frame; f !== undefined; f = f.parent) if (f.ended) return true;
  return false;
}

/** End `frame`: scopes started inside it are cut off from the connection from now on. */
function endFrame<C extends object>(record: LeaseRecord<C>, frame: TxFrame<C>): void {
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

type TxBody<C extends object, R> = (conn: C, tx: Transaction<C>) => R | PromiseLike<R>;

/**
 * `pool.withTx` / `withTx(pool, …)`. `site` is the caller's acquire site for leak reports.
 * Not an async function: the lease's acquire feeds the scope directly (one promise fewer, and one
 * microtask turn fewer before BEGIN); synchronous failures still reject, never throw.
 */
export function runTransaction<C extends object, R>(
  pool: Pool<C>,
  fn: TxBody<C, R>,
  options: TxOptions | undefined,
  site: CallSite | undefined,
): Promise<R> {
  try {
    const opts = resolveTxOptions(options);
    pool.adapter.validateBegin?.(opts.begin);
    const ambient = findAmbient(pool);
    if (ambient !== undefined) {
      const lease = ambient.lease;
      const record = lease.record;
      if (opts.propagation === 'required') {
        // Joining a scope that has ended fails: it never falls through to a fresh transaction.
        if (record.state !== 'active') throw record.useError();
        const frame = ambient.frame;
        if (frame !== undefined) {
          if (frameEnded(frame)) throw refusedScope(frame as TxFrame<object>, record.id);
          checkNestedOptions(opts.begin, frame.begin);
          return serialized(frame, () => savepoint(pool, lease, frame, fn));
        }
        return serialized(record, () => topLevel(pool, lease, fn, opts));
      }
      // A body the pool took back (deadline, close) is abandoned: it starts nothing new either.
      if (record.state === 'revoked') throw record.useError();
    }
    const acquired = pool.acquireLease(opts.acquireTimeoutMs ?? pool.options.acquireTimeoutMs, opts.signal, site, opts.timeoutMs, false);
    return pool.runAndRelease(acquired, (l) => topLevel(pool, l, fn, opts));
  } catch (err) {
    return Promise.reject(err);
  }
}

async function topLevel<C extends object, R>(pool: Pool<C>, lease: Lease<C>, fn: TxBody<C, R>, opts: ResolvedTxOptions): Promise<R> {
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
      if (await settleScopes(record, frame)) await noLateWork(frame);
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
      if (await rolledBackForRetry(pool, record, error, opts, attempt, startedAt)) continue;
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
    let reply: unknown;
    try {
      reply = await adapter.exec(raw, adapter.sql.commit);
      record.committing = false;
      record.txDepth = 0;
    } catch (error) {
      record.committing = false;
      record.txDepth = 0;
      if (adapter.isFatal(error) || record.connection.broken) {
        record.connection.markBroken(error);
        metrics.transaction('unknown', (now() - startedAt) / 1000);
        throw new TxOutcomeUnknownError({ cause: error });
      }
      // COMMIT refused (serialization failure, deferred constraint): the server rolled back.
      if (await rolledBackForRetry(pool, record, error, opts, attempt, startedAt)) continue;
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

async function savepoint<C extends object, R>(pool: Pool<C>, lease: Lease<C>, parent: TxFrame<C>, fn: TxBody<C, R>): Promise<R> {
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
    if (await settleScopes(record, frame)) await noLateWork(frame);
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
        await adapter.exec(raw, adapter.sql.releaseSavepoint(name));
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
 * transaction must not commit without the work that failed. Resolves true when there was
 * something to wait for.
 */
async function settleScopes<C extends object>(record: LeaseRecord<C>, frame: TxFrame<C>): Promise<boolean> {
  if (frame.tail === undefined && record.inflight === 0) {
    endFrame(record, frame);
    return false;
  }
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
  return true;
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

/**
 * A savepoint runs under its outer transaction's isolation and access mode; asking a nested
 * `withTx` for different ones cannot be honoured, so it is an error rather than ignored.
 */
function checkNestedOptions(requested: BeginOptions, outer: BeginOptions): void {
  const problems: { field: string; problem: string }[] = [];
  for (const field of ['isolation', 'readOnly', 'deferrable'] as const) {
    const wanted = requested[field];
    if (wanted !== undefined && wanted !== outer[field]) {
      problems.push({
        field,
        problem: `cannot be ${show(wanted)} in a nested transaction: it runs as a savepoint of the outer transaction (${field} ${show(outer[field])}); use propagation: 'requiresNew' for a separate transaction`,
      });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
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
async function rollbackAfter<C extends object>(pool: Pool<C>, record: LeaseRecord<C>, error: unknown): Promise<void> {
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
  pool: Pool<C>,
  record: LeaseRecord<C>,
  error: unknown,
  opts: ResolvedTxOptions,
  attempt: number,
  startedAt: number,
): Promise<boolean> {
  await rollbackAfter(pool, record, error);
  pool.metrics.transaction('rollback', (now() - startedAt) / 1000);
  // A TxAbortedError stands for the database error that aborted the transaction (its cause).
  const cause = error instanceof TxAbortedError ? error.cause : undefined;
  const retryable = pool.adapter.isRetryable(error) || (cause !== undefined && pool.adapter.isRetryable(cause));
  const retry = attempt <= opts.retries && record.state === 'active' && !record.connection.broken && retryable;
  if (!retry) return false;
  pool.metrics.transaction('retry', undefined);
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
