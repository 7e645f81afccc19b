/**
 * Transactions: `withTx` opens a transaction on its own lease or joins the ambient one;
 * nested calls become savepoints on the same connection; retryable failures of a top-level
 * transaction rerun it with backoff; a connection lost during COMMIT is reported as an
 * unknown outcome, never retried.
 */
import type { Adapter, BeginOptions, IsolationLevel, TxStatus } from './adapter';
import { enterScope, findAmbient, leaveScope } from './context';
import { attachSuppressed, ConfigError, TxAbortedError, TxOutcomeUnknownError } from './errors';
import type { CallSite, Lease, LeaseRecord } from './lease';
import { check, show } from './options';
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
  for (const key of Object.keys(input)) if (!TX_KEYS.has(key)) problems.push({ field: key, problem: 'is not a known transaction option' });
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
  constructor(
    readonly lease: Lease<C>,
    readonly depth: number,
    readonly attempt: number,
    readonly savepoint: string | undefined,
    /** The top-level transaction's BEGIN options; savepoints run under them. */
    readonly begin: BeginOptions,
  ) {}
  get signal(): AbortSignal {
    return this.lease.signal;
  }
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
    if (ambient !== undefined && opts.propagation === 'required') {
      const lease = ambient.lease;
      const frame = ambient.frame;
      if (frame !== undefined) {
        checkNestedOptions(opts.begin, frame.begin);
        return serialized(frame, () => savepoint(pool, lease, frame, fn));
      }
      return serialized(lease.record, () => topLevel(pool, lease, fn, opts));
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
      for (const statement of adapter.sql.begin(opts.begin)) await adapter.exec(raw, statement);
    } catch (err) {
      pool.noteError(record, err);
      throw err;
    }
    record.txDepth = 1;
    const frame = new TxFrame(lease, 1, attempt, undefined, opts.begin);
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
      // A nested withTx the body did not await still runs on this connection: let it finish
      // before COMMIT, never interleave with it.
      while (frame.tail !== undefined) await frame.tail;
    } catch (error) {
      record.txDepth = 0;
      if (endedInBody(adapter, raw)) {
        // A statement of the body ended the transaction (MySQL's implicit commit at DDL, a raw
        // COMMIT): nothing is left to roll back, and a rerun would repeat work that may be committed.
        metrics.transaction('rollback', (now() - startedAt) / 1000);
        throw withAttempts(error, attempt);
      }
      if (await rolledBackForRetry(pool, record, error, opts, attempt, startedAt)) continue;
      throw withAttempts(error, attempt);
    }
    // The body caught a failed statement and returned: the database has aborted the transaction
    // and PostgreSQL would answer COMMIT with a silent ROLLBACK. Never report that as a commit.
    let status = adapter.txStatus?.(raw);
    if (status === 'unknown' && adapter.settle !== undefined) status = await settledStatus(adapter, raw);
    if (record.state === 'active' && status === 'failed') {
      const error = new TxAbortedError();
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
    try {
      await adapter.exec(raw, adapter.sql.commit);
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
    metrics.transaction('commit', (now() - startedAt) / 1000);
    return result;
  }
}

async function savepoint<C extends object, R>(pool: Pool<C>, lease: Lease<C>, parent: TxFrame<C>, fn: TxBody<C, R>): Promise<R> {
  const record = lease.record;
  const { adapter } = pool;
  const raw = record.connection.raw;
  ensureActive(record);
  const name = `lp_sp_${++record.savepointSeq}`;
  try {
    await adapter.exec(raw, adapter.sql.savepoint(name));
  } catch (err) {
    pool.noteError(record, err);
    throw err;
  }
  record.txDepth++;
  try {
    const frame = new TxFrame(lease, parent.depth + 1, parent.attempt, name, parent.begin);
    const previous = enterScope(pool, lease as Lease<object>, frame as TxFrame<object>);
    let body: R | PromiseLike<R>;
    try {
      body = fn(lease.conn, frame);
    } finally {
      leaveScope(previous);
    }
    const result = await body;
    while (frame.tail !== undefined) await frame.tail;
    ensureActive(record);
    // A savepoint does not outlive its transaction: after an implicit commit there is none to release.
    if (!endedInBody(adapter, raw)) await adapter.exec(raw, adapter.sql.releaseSavepoint(name));
    return result;
  } catch (error) {
    if (record.state === 'active' && !record.connection.broken && !endedInBody(adapter, raw)) {
      try {
        await adapter.exec(raw, adapter.sql.rollbackToSavepoint(name));
        await adapter.exec(raw, adapter.sql.releaseSavepoint(name));
      } catch (rollbackError) {
        // The outer transaction can no longer be trusted: the connection will be destroyed.
        record.connection.markBroken(rollbackError);
        attachSuppressed(error, [rollbackError]);
      }
    }
    throw error;
  } finally {
    record.txDepth--;
  }
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
  const retry = attempt <= opts.retries && record.state === 'active' && !record.connection.broken && pool.adapter.isRetryable(error);
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
