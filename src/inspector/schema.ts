/**
 * The lease inspector's JSON schema: what `GET /debug/leases.json` answers and `inspectLeases()`
 * returns. Stable: fields are only ever added (with `schemaVersion` unchanged); a removed or
 * renamed field bumps `schemaVersion`. Absent values are `null`, never missing. Times in the
 * snapshot are milliseconds measured when it was taken (`…Ms`), except the ISO wall-clock stamps
 * (`generatedAt`, a report's `at`).
 *
 * No secret is ever part of it: statements appear as their SQL text as written (never the bound
 * parameter values), targets and messages pass through `redact()`.
 */
import type { PoolStats } from '../pool-types';
import type { RecoveryKind } from '../metrics';

/** Version of the schema below. */
export const INSPECTOR_SCHEMA_VERSION = 1;

/** The whole answer of `GET /debug/leases.json`. */
export interface InspectorSnapshot {
  readonly schemaVersion: typeof INSPECTOR_SCHEMA_VERSION;
  /** Wall-clock time the snapshot was taken, ISO 8601. */
  readonly generatedAt: string;
  /** Whether `POST …/reclaim` is enabled on the endpoint that served this (false from `inspectLeases()`). */
  readonly reclaimEnabled: boolean;
  readonly pools: readonly PoolSnapshot[];
}

/** One pool: its counts, its active leases (oldest first), its waiters, its recent reports. */
export interface PoolSnapshot {
  /** The pool's `name` option; also the `<pool>` of the reclaim URL. */
  readonly name: string;
  /** The adapter's name: `'pg'`, `'mysql2'`, `'pglite'`, … */
  readonly driver: string;
  /** `host:port/db` (never a password). */
  readonly target: string;
  /** As `pool.stats()`. */
  readonly stats: PoolStats;
  /** The pool's `leakDetectionMs` (0: off; then no acquire stacks are recorded). */
  readonly leakDetectionMs: number;
  /** True while an inspector is attached: statement text and start times are being recorded. */
  readonly statementTracking: boolean;
  /** Active leases, oldest first. */
  readonly leases: readonly LeaseSnapshot[];
  /** Callers waiting for a connection, longest-waiting first. */
  readonly waiters: readonly WaiterSnapshot[];
  /** The last leak reports, returns of leaked leases and reclaims seen while attached, newest first. */
  readonly recent: readonly ReportSnapshot[];
}

/**
 * What a lease is doing: `'running'` a statement (sent through `lease.conn` and not settled),
 * `'failed_transaction'` (an error aborted its transaction: only a rollback can follow),
 * `'in_transaction'` (open, between statements), `'idle'` (held, doing nothing).
 */
export type LeaseActivity = 'running' | 'failed_transaction' | 'in_transaction' | 'idle';

/** The transaction state of a lease's connection, as the lease and the driver know it. */
export type LeaseTransaction = 'none' | 'open' | 'failed' | 'unknown';

/** One active lease. */
export interface LeaseSnapshot {
  /** `lease.id` (unique in the process); the `<id>` of the reclaim URL. */
  readonly id: number;
  /** Since acquire. */
  readonly ageMs: number;
  readonly state: LeaseActivity;
  readonly transaction: LeaseTransaction;
  /** Open `withTx` frames: 0 none, 1 a transaction, 2+ with savepoints. */
  readonly txDepth: number;
  /** Savepoints open inside the transaction (`txDepth - 1`, at least 0). */
  readonly savepointDepth: number;
  /** Statements sent through `lease.conn` that have not settled. */
  readonly inflight: number;
  /** The statement running now, or null (none, or sent where the inspector cannot see it). */
  readonly statement: StatementSnapshot | null;
  /** The server's id of the session (PostgreSQL backend pid, MySQL thread id), when the adapter tells. */
  readonly backendId: number | string | null;
  /** Time left before the lease's hold deadline (`leaseTimeoutMs`, `withLease({ timeoutMs })`) revokes it; null: none. */
  readonly deadlineLeftMs: number | null;
  /** Reported as leaked (older than `leakDetectionMs`). */
  readonly leaked: boolean;
  /** The acquire call site ("    at …" frames), when one was recorded (leak detection on, within `leakStacksPerSecond`). */
  readonly stack: string | null;
}

/** A statement in flight. */
export interface StatementSnapshot {
  /** The SQL text as written (placeholders, not values), cut at 2000 characters. */
  readonly sql: string;
  /** Since it was sent (the last one sent, when several are in flight). */
  readonly runningMs: number;
}

/** A caller waiting for a connection. */
export interface WaiterSnapshot {
  readonly waitingMs: number;
}

/** A leak report, a leaked lease coming back, or a reclaim, as seen while the inspector was attached. */
export interface ReportSnapshot {
  readonly kind: 'leak' | 'leak_returned' | 'reclaim';
  /** Wall-clock time of the report, ISO 8601. */
  readonly at: string;
  readonly leaseId: number;
  /** The lease's age at the report (for `leak_returned`: how long it was held in all). */
  readonly ageMs: number;
  /** For `reclaim`: the recovery kind (`deadline`, `leak_reclaimed`, `gc_reclaimed`, `shutdown_reclaimed`); else null. */
  readonly recovery: RecoveryKind | null;
  /** For `reclaim`: why (the revoke reason's message, redacted); else null. */
  readonly reason: string | null;
  readonly inTransaction: boolean | null;
  /** The acquire stack, when recorded. */
  readonly stack: string | null;
}
