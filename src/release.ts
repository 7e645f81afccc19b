/**
 * The release path, top to bottom: how a lease ends and its connection goes back clean.
 *
 *   release:  1. deferred cleanups, LIFO, every one runs
 *             2. transaction open or failed → ROLLBACK (counted); a failed rollback → destroy
 *             3. broken / mid-query / past maxLifetimeMs / past maxUses → destroy
 *             4. resetOnRelease → reset; a failed reset → destroy
 *             5. back to the pool (straight to the longest-waiting caller, else generic-pool's
 *                idle set); lease duration observed; dropped from the leak registry
 *   reclaim:  the pool takes a lease back (deadline, dropped handle, shutdown): revoke, cancel
 *             the running statement, roll back, destroy the connection, report it.
 *
 * A connection is never returned to the pool in a transaction, broken, or mid-query.
 */
import type { Adapter, TxStatus } from './adapter';
import type { PooledConnection } from './connections';
import { runCleanups } from './defer';
import { LeasepoolError, markStatementInFlight, TxOutcomeUnknownError } from './errors';
import type { LeaseOwner, LeaseRecord } from './lease-record';
import type { CloseReason, RecoveryKind } from './metrics';
import { now, withTimeout } from './time';

/**
 * @internal Test-only observation point (the chaos suite): `onReturn` is called with every
 * connection at the moment the release path hands it back to the pool. Unset, it costs one
 * property read per release and allocates nothing. Not part of the public API.
 */
export const releaseProbe: { onReturn: ((adapter: Adapter<object>, raw: object) => void) | undefined } = { onReturn: undefined };

/** Release a lease (idempotent: a second call gets the first call's promise). Resolves to cleanup errors. */
export function releaseLease<C extends object>(record: LeaseRecord<C>): Promise<unknown[]> {
  if (record.releasing === undefined) {
    try {
      record.releasing = releaseAtOnce(record) ? RELEASED_CLEAN : runRelease(record);
    } catch (err) {
      // A throwing listener or logger: a rejection, as it would be inside runRelease.
      record.releasing = Promise.reject(err);
    }
  }
  return record.releasing;
}

/**
 * The common release has nothing to wait for (no deferred cleanup, no statement running, no
 * transaction to roll back, no session reset): steps 3 and 5 run at once, without the async
 * function of `runRelease` and the promises it costs (a large share of a cheap lease's cost).
 * Returns false, having changed nothing, when the full path is needed.
 */
function releaseAtOnce<C extends object>(record: LeaseRecord<C>): boolean {
  const owner = record.owner;
  const conn = record.connection;
  if (record.state !== 'active' || record.inflight > 0 || conn.broken) return false;
  if (record.cleanups !== undefined && record.cleanups.length > 0) return false;
  if (owner.resetOnRelease && owner.adapter.reset !== undefined) return false;
  if (transactionStatus(owner.adapter, record) !== 'idle') return false;
  if (owner.adapter.sessionChanged?.(conn.raw) === true) return false;
  if (record.deadlineTimer !== undefined) clearTimeout(record.deadlineTimer);
  record.state = 'released';
  owner.forget(record, 'released');
  conn.uses++;
  const releasedAt = now();
  handBack(owner, record, conn, conn.uses >= owner.maxUses ? 'max_uses' : releasedAt >= conn.expiresAt ? 'lifetime' : undefined, releasedAt);
  return true;
}

async function runRelease<C extends object>(record: LeaseRecord<C>): Promise<unknown[]> {
  const owner = record.owner;
  const conn = record.connection;

  // 1. Deferred cleanups, LIFO. They may still use the connection, and they run under the lease's
  //    deadline (and close()'s): one that never settles does not hold the caller past it.
  const cleanupErrors = record.cleanups === undefined || record.cleanups.length === 0 ? NO_ERRORS : await untilRevoked(record, runCleanups(record.cleanups));
  if (record.deadlineTimer !== undefined) clearTimeout(record.deadlineTimer);
  if (cleanupErrors.length > 0) owner.reportCleanupErrors(record, cleanupErrors);
  if (record.state !== 'active') return cleanupErrors; // reclaimed while cleanups ran: the reclaim owns the connection

  record.state = 'released';
  owner.forget(record, 'released');

  // A statement still running means the connection is mid-protocol: it cannot be handed on.
  if (record.inflight > 0) conn.markBroken(new Error('released with a statement still running'));

  // 2. Never hand on a connection inside a transaction.
  if (!conn.broken) {
    let status = transactionStatus(owner.adapter, record);
    if (status === 'unknown' && owner.adapter.settle !== undefined) {
      await withTimeout(owner.adapter.settle(conn.raw), owner.controlTimeoutMs).catch(() => undefined);
      status = transactionStatus(owner.adapter, record);
    }
    if (status !== 'idle') {
      try {
        await withTimeout(owner.adapter.exec(conn.raw, owner.adapter.sql.rollback), owner.controlTimeoutMs);
        owner.metrics.recovery('rollback_on_release');
      } catch (err) {
        conn.markBroken(err);
      }
    }
  }

  // 3. Retire what must not be reused.
  conn.uses++;
  let releasedAt = now();
  let retire: CloseReason | undefined = conn.broken
    ? 'broken'
    : conn.uses >= owner.maxUses
      ? 'max_uses'
      : releasedAt >= conn.expiresAt
        ? 'lifetime'
        : undefined;
  // Session state a borrower changed (autocommit off, table or advisory locks …) would cost the
  // next borrower a write or a lock. Without resetOnRelease the connection is closed; reset first
  // where the adapter can, so that its locks are gone by the time the release resolves (a closing
  // socket lets go of them only when the server notices).
  if (retire === undefined && !(owner.resetOnRelease && owner.adapter.reset !== undefined) && owner.adapter.sessionChanged?.(conn.raw) === true) {
    retire = 'reset';
    if (owner.adapter.reset !== undefined) await withTimeout(owner.adapter.reset(conn.raw), owner.controlTimeoutMs).catch(() => undefined);
    releasedAt = now();
  }

  // 4. Optional session reset.
  if (retire === undefined && owner.resetOnRelease && owner.adapter.reset !== undefined) {
    try {
      await withTimeout(owner.adapter.reset(conn.raw), owner.controlTimeoutMs);
    } catch (err) {
      conn.markBroken(err);
      retire = 'reset';
    }
    releasedAt = now();
  }

  // 5. Back to the pool, or closed.
  handBack(owner, record, conn, retire, releasedAt);
  return cleanupErrors;
}

/** `work`'s result, or no errors as soon as the pool revokes the lease (the reclaim then owns the connection). */
function untilRevoked<C extends object>(record: LeaseRecord<C>, work: Promise<unknown[]>): Promise<unknown[]> {
  return new Promise<unknown[]>((resolve) => {
    record.onRevoke = () => resolve(NO_ERRORS);
    work.then((errors) => {
      record.onRevoke = undefined;
      resolve(errors);
    });
  });
}

/** Step 5: the connection back to the pool, or closed; the lease's duration observed. */
function handBack<C extends object>(
  owner: LeaseOwner<C>,
  record: LeaseRecord<C>,
  conn: PooledConnection<C>,
  retire: CloseReason | undefined,
  releasedAt: number,
): void {
  if (retire === undefined) {
    releaseProbe.onReturn?.(owner.adapter, conn.raw);
    owner.returnToPool(conn);
  } else owner.destroyConnection(conn, retire);
  owner.metrics.released((releasedAt - record.acquiredAt) / 1000);
}

/**
 * Take a lease back: further use of its connection throws `LeaseRevokedError`, its signal aborts,
 * the running statement is cancelled, the transaction rolled back, the connection destroyed.
 */
export function reclaimLease<C extends object>(
  record: LeaseRecord<C>,
  kind: RecoveryKind,
  reason: Error,
  /** Bound on cancel + rollback together (default `controlTimeoutMs`); close() passes what its deadline leaves. */
  budgetMs?: number,
): Promise<void> {
  if (record.state !== 'active') return Promise.resolve();
  // A statement outside a transaction (autocommit) has no rollback to undo it: say it may have landed.
  if (!record.committing && record.inflight > 0 && reason instanceof LeasepoolError) {
    const status = transactionStatus(record.owner.adapter, record);
    if (status === 'idle' || status === 'unknown') markStatementInFlight(reason);
  }
  record.state = 'revoked';
  record.revokedBy = reason;
  if (record.deadlineTimer !== undefined) clearTimeout(record.deadlineTimer);
  record.controller?.abort(reason);
  record.onDrained?.();
  // Revoked while COMMIT is on the wire (deadline, close): the COMMIT may still land, so the caller
  // must not be told the work was undone.
  record.onRevoke?.(
    record.committing
      ? new TxOutcomeUnknownError({ cause: reason }, `Lease #${record.id} was revoked during COMMIT (${reason.message}); the transaction outcome is unknown`)
      : reason,
  );
  const owner = record.owner;
  owner.forget(record, 'reclaimed');
  try {
    owner.reportReclaim(record, kind, reason);
  } catch {
    // A throwing 'reclaim' listener or logger must not stop the reclaim half way (it runs in a timer).
  }
  const done = runReclaim(record, budgetMs ?? owner.controlTimeoutMs);
  // A later release() joins the reclaim; cleanups already running under a release are not rerun.
  if (record.releasing === undefined) {
    const cleanups = done.then(() => runCleanups(record.cleanups)).then((errors) => {
      if (errors.length > 0) owner.reportCleanupErrors(record, errors);
      return errors;
    });
    // The deadline has passed: the caller is told once the reclaim is done and the cleanups had a
    // short grace; one that never settles runs on without holding the caller (reported if it fails).
    record.releasing = done.then(() => withTimeout(cleanups, CLEANUP_GRACE_MS).catch(() => NO_ERRORS));
  }
  return done;
}

async function runReclaim<C extends object>(record: LeaseRecord<C>, budgetMs: number): Promise<void> {
  const owner = record.owner;
  const { adapter } = owner;
  const conn = record.connection;
  // Cancel and rollback share one budget: on a dead or blackholed socket each would otherwise
  // wait its own full timeout (and close() would overrun its deadline by both).
  const until = now() + Math.min(budgetMs, owner.controlTimeoutMs);
  if (record.inflight > 0 && adapter.cancel !== undefined && !conn.broken && now() < until) {
    await withTimeout(adapter.cancel(conn.raw), until - now()).catch(() => undefined);
  }
  if (!conn.broken && now() < until && transactionStatus(adapter, record) !== 'idle') {
    // The server would roll back when the connection closes; saying so explicitly is cheaper
    // to reason about and releases locks before the close handshake.
    await withTimeout(adapter.exec(conn.raw, adapter.sql.rollback), until - now()).catch(() => undefined);
  }
  owner.destroyConnection(conn, 'reclaimed');
  owner.metrics.released((now() - record.acquiredAt) / 1000);
}

/** The lease's own bookkeeping first (it knows of open withTx scopes), then what the driver reports. */
function transactionStatus<C extends object>(adapter: Adapter<C>, record: LeaseRecord<C>): TxStatus {
  if (record.txDepth > 0) return 'in_tx';
  return adapter.txStatus?.(record.connection.raw) ?? 'idle';
}

/** How long the caller of a reclaimed lease waits for its deferred cleanups after the reclaim. */
const CLEANUP_GRACE_MS = 250;

const NO_ERRORS: unknown[] = [];
Object.freeze(NO_ERRORS);

/** What `releaseLease` returns for a release completed at once (no cleanup errors, nothing to wait for). */
export const RELEASED_CLEAN: Promise<unknown[]> = Promise.resolve(NO_ERRORS);
