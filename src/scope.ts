/**
 * Scopes: running a body on a lease and ending it. A scope settles with the body's outcome, or
 * with the revoke reason as soon as the pool takes the lease back (deadline, close(), reclaim),
 * and always releases the lease through the release path (`release.ts`) before it settles.
 *
 * The functions here are called from the event loop's reactions with as few frames of ours as
 * possible under the body: a driver that captures a stack per statement (mysql2's `trace`) and the
 * sampled acquire stacks of leak detection pay for each one (bench scenario: mysql-select).
 */
import { PooledConnection } from './connections';
import { enterScope, leaveScope } from './context';
import { attachSuppressed, CleanupError } from './errors';
import { Lease } from './lease';
import type { LeaseRecord } from './lease-record';
import { RELEASED_CLEAN, releaseLease } from './release';

const RESOLVED = Promise.resolve();

/** An acquire under way: see `Pool.#startAcquire`. */
export interface PendingAcquire<C extends object> {
  readonly connection: PooledConnection<C> | Promise<PooledConnection<C>>;
  readonly grant: (conn: PooledConnection<C>) => Lease<C> | Promise<Lease<C>>;
}

/** Join the ambient lease: same connection, no release at the end (the outer scope owns it). */
export async function joinScope<C extends object, R>(fn: (conn: C, lease: Lease<C>) => R | PromiseLike<R>, lease: Lease<C>): Promise<R> {
  return fn(lease.conn, lease);
}

/**
 * Run a scope's body on `lease` and settle the scope's promise: with the body's outcome, or with
 * the revoke reason as soon as the pool revokes the lease (deadline, close(), reclaim) even if the
 * body ignores it; then release (see `endScope`). Never throws: every path ends in `endScope`.
 *
 * The body is `body(lease)` (withTx brings its own), or, for withLease, `fn(conn, lease)` run in
 * the ambient scope of `pool`, called from here without a closure in between: every frame between
 * the event loop and a driver call costs drivers that capture a stack per statement (mysql2's
 * promise API does, by default) and the sampled acquire stacks of leak detection. For the same
 * reason a withLease body is started by `LeasedScope.then` or `grantAndRunScope` (a bound
 * function, which adds no frame), not by an arrow that calls this.
 */
function runScope<C extends object, R>(
  lease: Lease<C>,
  body: ((lease: Lease<C>) => R | PromiseLike<R>) | undefined,
  fn: ((conn: C, lease: Lease<C>) => R | PromiseLike<R>) | undefined,
  pool: object | undefined,
  resolve: (value: R) => void,
  reject: (error: unknown) => void,
): void {
  const record = lease.record;
  let value: R | PromiseLike<R>;
  if (body !== undefined) {
    try {
      value = body(lease);
    } catch (error) {
      return endScope(record, true, error, resolve, reject);
    }
  } else {
    const previous = enterScope(pool as object, lease as Lease<object>, undefined);
    try {
      value = (fn as (conn: C, lease: Lease<C>) => R | PromiseLike<R>)(lease.conn, lease);
    } catch (error) {
      return endScope(record, true, error, resolve, reject);
    } finally {
      leaveScope(previous);
    }
  }
  watchScope(record, value, resolve, reject);
}

/** What a withLease scope that waits for its connection needs once it has one (see `grantAndRunScope`). */
class WaitingScope<C extends object, R> {
  constructor(
    readonly grant: (conn: PooledConnection<C>) => Lease<C> | Promise<Lease<C>>,
    readonly fn: (conn: C, lease: Lease<C>) => R | PromiseLike<R>,
    readonly pool: object,
    readonly resolve: (value: R) => void,
    readonly reject: (error: unknown) => void,
    readonly failAcquire: (error: unknown) => void,
  ) {}
}

/**
 * A withLease scope that waited for its connection: lease it (`grant`), then run `fn` as
 * `runScope` does. The body is called here rather than through `runScope`, so that one frame of
 * leasepool's, not two, lies under it (see `runScope`). The scope comes as `this` (bound), not as
 * six bound arguments: the less state this frame holds when it calls the body, the less a stack
 * capture decodes (bench scenario: mysql-select).
 */
function grantAndRunScope<C extends object, R>(this: WaitingScope<C, R>, conn: PooledConnection<C>): void {
  let lease: Lease<C> | Promise<Lease<C>>;
  try {
    lease = this.grant(conn);
  } catch (err) {
    return this.failAcquire(err);
  }
  if (!(lease instanceof Lease)) {
    lease.then((granted) => runScope(granted, undefined, this.fn, this.pool, this.resolve, this.reject), this.failAcquire);
    return;
  }
  const fn = this.fn;
  const previous = enterScope(this.pool, lease as Lease<object>, undefined);
  let value: R | PromiseLike<R>;
  try {
    value = fn(lease.conn, lease);
  } catch (error) {
    return endScope(lease.record, true, error, this.resolve, this.reject);
  } finally {
    leaveScope(previous);
  }
  watchScope(lease.record, value, this.resolve, this.reject);
}

/**
 * A withLease scope whose connection was idle, leased at once: the scope's promise is
 * `Promise.resolve()` of this thenable, so V8 calls `then` in the microtask where the body would
 * start anyway (a job queued when the scope began, as `RESOLVED.then(…)` queues one). That job
 * needs no promise of its own: with AsyncLocalStorage on (Node < 22), every promise made costs
 * an async_hooks init call. `then` runs the body as `grantAndRunScope` does: one frame under it
 * (see `runScope`), and one that holds little, which is what a stack capture in the body (mysql2's
 * `trace`) decodes of it. Never exposed: only V8 sees it, and calls `then` once.
 */
class LeasedScope<C extends object, R> {
  constructor(
    readonly lease: Lease<C>,
    readonly fn: (conn: C, lease: Lease<C>) => R | PromiseLike<R>,
    readonly pool: object,
  ) {}

  then(resolve: (value: R) => void, reject: (error: unknown) => void): void {
    const lease = this.lease;
    const fn = this.fn;
    const previous = enterScope(this.pool, lease as Lease<object>, undefined);
    let value: R | PromiseLike<R>;
    try {
      value = fn(lease.conn, lease);
    } catch (error) {
      return endScope(lease.record, true, error, resolve, reject);
    } finally {
      leaveScope(previous);
    }
    watchScope(lease.record, value, resolve, reject);
  }
}

/** The rest of a scope once its body has returned `value`: settle with it, or race it with a revoke. */
function watchScope<C extends object, R>(
  record: LeaseRecord<C>,
  value: R | PromiseLike<R>,
  resolve: (value: R) => void,
  reject: (error: unknown) => void,
): void {
  if (!isThenable(value)) return endScope(record, false, value, resolve, reject);
  if (record.state === 'revoked') return endScope(record, true, record.revokedBy, resolve, reject);
  // Any lease can be revoked, not only one with a deadline: always race. A plain callback on the
  // record, not an AbortSignal listener (those cost microseconds).
  let settled = false;
  record.onRevoke = (reason) => {
    if (settled) return;
    settled = true;
    // reclaimLease calls this before it has set `record.releasing` to its reclaim: end the scope
    // once it has, so that the caller hears of the revoke only after the reclaim is done.
    queueMicrotask(() => endScope(record, true, reason, resolve, reject));
  };
  try {
    value.then(
      (v) => {
        record.onRevoke = undefined;
        if (settled) return;
        settled = true;
        endScope(record, false, v, resolve, reject);
      },
      (err: unknown) => {
        record.onRevoke = undefined;
        if (settled) return;
        settled = true;
        endScope(record, true, err, resolve, reject);
      },
    );
  } catch (err) {
    // A thenable whose then() throws: the body failed.
    record.onRevoke = undefined;
    if (settled) return;
    settled = true;
    endScope(record, true, err, resolve, reject);
  }
}

/**
 * `runScope` for a body that reports through a callback (`Pool.scopedCallback`): the same race
 * with a revoke, the same `endScope`, without the body's promise and the reactions on it. The
 * body's error and the revoke reason go through `mapError` first (such a body defers no cleanup,
 * so there are no cleanup errors to attach to either).
 */
function runCallbackScope<C extends object, R>(
  lease: Lease<C>,
  send: (lease: Lease<C>, done: (error: unknown, value?: R) => void) => void,
  resolve: (value: R) => void,
  reject: (error: unknown) => void,
  mapError: ((error: unknown, started: boolean) => unknown) | undefined,
): void {
  const record = lease.record;
  let settled = false;
  // Installed before the body runs: a revoke it causes synchronously is seen too.
  record.onRevoke = (reason) => {
    if (settled) return;
    settled = true;
    const error = mapError === undefined ? reason : mapError(reason, true);
    queueMicrotask(() => endScope(record, true, error, resolve, reject));
  };
  const done = (error: unknown, value?: R): void => {
    if (settled) return;
    settled = true;
    record.onRevoke = undefined;
    if (error === undefined || error === null) endScope(record, false, value, resolve, reject);
    else endScope(record, true, mapError === undefined ? error : mapError(error, true), resolve, reject);
  };
  try {
    send(lease, done);
  } catch (error) {
    done(error ?? new Error(`the scope's body threw ${String(error)}`));
  }
}

/** What a failed acquire rejects a scope with, as a reaction: `mapError(error, false)` when given. */
function acquireFailure(reject: (error: unknown) => void, mapError: ((error: unknown, started: boolean) => unknown) | undefined): (error: unknown) => void {
  return mapError === undefined ? reject : (error) => reject(mapError(error, false));
}

/**
 * Release the scope's lease and settle: the body's error wins (cleanup errors attached to it),
 * else cleanup errors reject as `CleanupError`, else the body's value. A release with nothing to
 * wait for settles at once.
 */
function endScope<C extends object, R>(
  record: LeaseRecord<C>,
  failed: boolean,
  outcome: unknown,
  resolve: (value: R) => void,
  reject: (error: unknown) => void,
): void {
  const releasing = releaseLease(record);
  if (releasing === RELEASED_CLEAN) {
    if (failed) reject(outcome);
    else resolve(outcome as R);
    return;
  }
  releasing.then((cleanupErrors) => {
    try {
      // Taken back while its cleanups ran (a deadline, close()): the body's work stands, the
      // cleanups did not finish in time.
      const revokedBy = record.state === 'revoked' ? record.revokedBy : undefined;
      if (failed) {
        attachSuppressed(outcome, revokedBy === undefined || revokedBy === outcome ? cleanupErrors : [...cleanupErrors, revokedBy]);
        reject(outcome);
      } else if (revokedBy !== undefined && revokedBy !== outcome) reject(new CleanupError([...cleanupErrors, revokedBy]));
      else if (cleanupErrors.length > 0) reject(new CleanupError(cleanupErrors));
      else resolve(outcome as R);
    } catch (err) {
      reject(err);
    }
  }, reject);
}

function isThenable<R>(value: R | PromiseLike<R>): value is PromiseLike<R> {
  return value !== null && typeof value === 'object' && typeof (value as PromiseLike<R>).then === 'function';
}

/**
 * A new withLease scope (`fn`), or a callback scope (`send`, see `Pool.scopedCallback`), on the
 * connection an acquire under way brings: lease it, run the body in the ambient scope of `pool`,
 * settle, release.
 *
 * Not async, and not acquireLease + runAndRelease: the connection's promise feeds the scope's own
 * promise directly, which saves the promise of an async frame and of the acquire's `.then`.
 */
export function startScope<C extends object, R>(
  pending: PendingAcquire<C>,
  fn: ((conn: C, lease: Lease<C>) => R | PromiseLike<R>) | undefined,
  send: ((lease: Lease<C>, done: (error: unknown, value?: R) => void) => void) | undefined,
  pool: object,
  mapError: ((error: unknown, started: boolean) => unknown) | undefined,
): Promise<R> {
  if (send === undefined && pending.connection instanceof PooledConnection) {
    let lease: Lease<C> | Promise<Lease<C>>;
    try {
      lease = pending.grant(pending.connection);
    } catch (err) {
      return Promise.reject(mapError === undefined ? err : mapError(err, false));
    }
    // Leased now; the body still starts asynchronously, as it does after a wait (see LeasedScope).
    if (lease instanceof Lease) return Promise.resolve(new LeasedScope(lease, fn as (conn: C, lease: Lease<C>) => R | PromiseLike<R>, pool) as unknown as PromiseLike<R>);
    const replacing = lease;
    // The grant first had to replace a broken connection (rare).
    return new Promise<R>((resolve, reject) => {
      replacing.then((granted) => runScope(granted, undefined, fn, pool, resolve, reject), acquireFailure(reject, mapError));
    });
  }
  return new Promise<R>((resolve, reject) => {
    const { connection, grant } = pending;
    if (connection instanceof PooledConnection) {
      // A callback scope (`send`): an idle withLease one returned above.
      const sendNow = send as NonNullable<typeof send>;
      // Leased now; the body still starts asynchronously, as it does after a wait (one reaction).
      let lease: Lease<C> | Promise<Lease<C>>;
      try {
        lease = grant(connection);
      } catch (err) {
        return reject(mapError === undefined ? err : mapError(err, false));
      }
      if (!(lease instanceof Lease)) {
        // The grant first had to replace a broken connection (rare): only then are these reactions made.
        lease.then((granted) => runCallbackScope(granted, sendNow, resolve, reject, mapError), acquireFailure(reject, mapError));
      } else RESOLVED.then(() => runCallbackScope(lease, sendNow, resolve, reject, mapError));
      return;
    }
    const failAcquire = acquireFailure(reject, mapError);
    if (send === undefined) {
      const run = (grantAndRunScope<C, R>).bind(new WaitingScope(grant, fn as (conn: C, lease: Lease<C>) => R | PromiseLike<R>, pool, resolve, reject, failAcquire));
      connection.then(run, failAcquire);
      return;
    }
    connection.then((conn) => {
      let lease: Lease<C> | Promise<Lease<C>>;
      try {
        lease = grant(conn);
      } catch (err) {
        return failAcquire(err);
      }
      if (lease instanceof Lease) runCallbackScope(lease, send, resolve, reject, mapError);
      else lease.then((granted) => runCallbackScope(granted, send, resolve, reject, mapError), failAcquire);
    }, failAcquire);
  });
}

/**
 * The scope protocol for a body of its own (withTx's): run `body`, then release; the body's error
 * wins and cleanup errors are attached to it; if the pool revokes the lease, the caller gets the
 * revoke reason at once even if the body ignores it.
 *
 * Not an async function: one explicit promise per scope, settled by `runScope`/`endScope`,
 * replaces the async function's promise, the revocation race's own promise and the two awaits
 * (each of which costs a throwaway promise while AsyncLocalStorage's promise hooks are on, as
 * they are on Node < 22 once any scope has run).
 */
export function runAndReleaseScope<C extends object, R>(leaseOrAcquire: Lease<C> | Promise<Lease<C>>, body: (lease: Lease<C>) => R | PromiseLike<R>): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    if (leaseOrAcquire instanceof Lease) runScope(leaseOrAcquire, body, undefined, undefined, resolve, reject);
    else leaseOrAcquire.then((lease) => runScope(lease, body, undefined, undefined, resolve, reject), reject);
  });
}

