/**
 * The state of one lease, and what it needs from the pool that owns it. The bottom of the lease
 * modules: the guard (guard.ts), the release path (release.ts), the handle (lease.ts) and the pool
 * all work on a `LeaseRecord`; none of them is imported from here.
 */
import type { Adapter } from './adapter';
import type { PooledConnection } from './connections';
import type { Cleanup } from './defer';
import { LeaseReleasedError, LeaseRevokedError } from './errors';
import type { CloseReason, MetricsSink, RecoveryKind } from './metrics';

/** What a method of the raw connection is to the guard: a lease operation, or a statement to track. */
export type MethodKind = 'release' | 'destroy' | 'statement';

/** Per-adapter constants the guard needs, computed once per pool. */
export interface GuardConfig {
  /** The adapter's lifecycle and statement methods by name (one lookup per method access). */
  readonly methodKinds: ReadonlyMap<PropertyKey, MethodKind>;
  /** The adapter's `lifecycleMethods.doubleReleaseMessage`: a second release call throws it. */
  readonly doubleReleaseMessage: string | undefined;
  /**
   * Set while a lease inspector is attached to the pool (src/inspector/): the guard then notes
   * each statement's SQL text and start time on its lease. Off, that bookkeeping costs one read.
   */
  trackStatements: boolean;
}

/** What the release path needs from the pool. */
export interface LeaseOwner<C extends object> {
  readonly adapter: Adapter<C>;
  readonly guardConfig: GuardConfig;
  readonly resetOnRelease: boolean;
  readonly maxUses: number;
  readonly metrics: MetricsSink;
  /** Bound on each control statement the pool sends on its own (rollback, reset, cancel). */
  readonly controlTimeoutMs: number;
  /** A call through `lease.conn` failed: a fatal error marks the connection broken. */
  noteError(record: LeaseRecord<C>, err: unknown): void;
  /** The error for a statement sent now from a transaction frame of `record` that has ended (see guard.ts). */
  scopeEnded(record: LeaseRecord<C>): Error | undefined;
  releaseFromHandle(record: LeaseRecord<C>): Promise<void>;
  /** Drop from the active registry; report the return of a lease reported as leaked. */
  forget(record: LeaseRecord<C>, outcome: 'released' | 'reclaimed'): void;
  returnToPool(conn: PooledConnection<C>): void;
  destroyConnection(conn: PooledConnection<C>, reason: CloseReason): void;
  reportCleanupErrors(record: LeaseRecord<C>, errors: readonly unknown[]): void;
  reportReclaim(record: LeaseRecord<C>, kind: RecoveryKind, reason: Error): void;
}

export type LeaseState = 'active' | 'released' | 'revoked';


/** A captured call site; `.stack` is formatted by V8 only when read. */
export interface CallSite {
  readonly stack?: string;
}

let nextLeaseId = 1;

/** Internal state of one lease. */
export class LeaseRecord<C extends object = object> {
  readonly id = nextLeaseId++;
  state: LeaseState = 'active';
  /** Set when release starts: a second release joins it. */
  releasing: Promise<unknown[]> | undefined = undefined;
  cleanups: Cleanup[] | undefined = undefined;
  /** Open withTx frames on this lease (0 = none). */
  txDepth = 0;
  /** Statements sent through `lease.conn` that have not settled. */
  inflight = 0;
  /** With an inspector attached (`GuardConfig.trackStatements`): the SQL text of the last statement sent, until none is in flight. */
  sqlText: string | undefined = undefined;
  /** `Date.now()` when `sqlText` was sent (wall clock: the cheapest clock read per statement). */
  sqlStartedAt = 0;
  /** `now()` at which the lease's hold deadline revokes it (`Infinity`: no deadline). */
  deadlineAt = Infinity;
  controller: AbortController | undefined = undefined;
  deadlineTimer: NodeJS.Timeout | undefined = undefined;
  revokedBy: Error | undefined = undefined;
  leakReported = false;
  /** A release method of the driver (`conn.release()`) was called on `lease.conn`. */
  releaseCalled = false;
  /** Serialises transaction scopes opened directly on this lease (see transaction.ts). */
  tail: Promise<void> | undefined = undefined;
  savepointSeq = 0;
  /** The top-level COMMIT is on the wire: a revoke now cannot tell the caller the work was undone. */
  committing = false;
  /**
   * Why the open transaction can no longer commit, once it cannot: the server rolled it back
   * (deadlock), the connection was lost, or a savepoint could not be rolled back to. Statements
   * through `lease.conn` are refused from then on, and the top-level `withTx` rejects.
   */
  txLost: unknown = undefined;
  /**
   * Set once a transaction frame on this lease has ended: from then on each statement is checked
   * against the scope that sends it (see `Pool.scopeEnded`), so that an un-awaited scope of an
   * ended transaction cannot run statements outside it.
   */
  checkScopes = false;
  /**
   * Bodies that have returned and wait for the statements and nested scopes they did not await
   * (nested: a savepoint's wait inside its transaction's); `drainError` is the first failure among those.
   */
  draining = 0;
  drainError: unknown = undefined;
  /** Called when `inflight` drops to 0 (or the lease is revoked) while someone waits for that. */
  onDrained: (() => void) | undefined = undefined;
  /** Neighbours in the pool's {@link ActiveLeases} (acquire order). */
  prevActive: LeaseRecord<C> | undefined = undefined;
  nextActive: LeaseRecord<C> | undefined = undefined;
  isActiveListed = false;

  constructor(
    readonly owner: LeaseOwner<C>,
    readonly connection: PooledConnection<C>,
    readonly acquiredAt: number,
    readonly site: CallSite | undefined,
  ) {}

  /** The error any use of the connection throws once the lease has ended. */
  useError(): Error {
    return this.state === 'revoked'
      ? new LeaseRevokedError(this.id, this.revokedBy?.message ?? 'revoked')
      : new LeaseReleasedError(this.id);
  }

  /** Set while a scope (withLease/withTx) awaits its body: rejects the scope's call when the lease is revoked. */
  onRevoke: ((reason: Error) => void) | undefined = undefined;

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      // Asked for only after the pool took the lease back: it must read as aborted all the same.
      if (this.state === 'revoked') this.controller.abort(this.revokedBy);
    }
    return this.controller.signal;
  }
}

