/**
 * `withTx` options: their defaults and their validation against allow-lists (never interpolated
 * into SQL), and the rule that a nested `withTx` runs under its outer transaction's options.
 */
import type { BeginOptions, IsolationLevel } from './adapter';
import { ConfigError } from './errors';
import { check, show, unknownOption } from './options';

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

export interface ResolvedTxOptions {
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


/**
 * A savepoint runs under its outer transaction's isolation and access mode; asking a nested
 * `withTx` for different ones cannot be honoured, so it is an error rather than ignored.
 */
export function checkNestedOptions(requested: BeginOptions, outer: BeginOptions): void {
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

