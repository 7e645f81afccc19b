/**
 * The ambient context: which lease (and which transaction frame) the current async call chain
 * holds, per pool. Pool calls made inside a scope join it instead of taking a second connection.
 * One AsyncLocalStorage for all pools; each scope pushes a small immutable link.
 */
import type { AsyncLocalStorage } from 'node:async_hooks';
import { ambientStorage } from './ambient-storage';
import type { Lease } from './lease';
import { frameEnded, refusedScope, type TxFrame } from './tx-frame';

export interface Ambient<C extends object = object> {
  readonly pool: object;
  readonly lease: Lease<C>;
  /** Innermost open transaction frame of this lease in this call chain, if any. */
  readonly frame: TxFrame<C> | undefined;
  readonly parent: Ambient | undefined;
}

const storage = ambientStorage as AsyncLocalStorage<Ambient>;

/**
 * The innermost scope of `pool` in the current call chain, whatever the state of its lease. A
 * caller inside a scope whose lease was revoked or released must fail, not quietly take another
 * connection: that would turn "rolled back at the deadline" into "half committed elsewhere".
 */
export function findAmbient<C extends object>(pool: { readonly adapter: { connect(...args: never[]): Promise<C> } }): Ambient<C> | undefined {
  for (let a = storage.getStore(); a !== undefined; a = a.parent) {
    if (a.pool === pool) return a as unknown as Ambient<C>;
  }
  return undefined;
}

/**
 * The transaction frame, among those open in the current call chain on `record`'s lease, that has
 * already ended (the scope sending a statement now outlived it), if any.
 */
export function endedFrameOf(record: object): TxFrame | undefined {
  for (let a = storage.getStore(); a !== undefined; a = a.parent) {
    if (a.lease.record !== record) continue;
    for (let f = a.frame; f !== undefined; f = f.parent) if (f.ended) return f;
    return undefined;
  }
  return undefined;
}

/**
 * Make `lease`/`frame` the ambient scope of `pool` for the code that runs now, until
 * `leaveScope(returned value)`: `storage.run()` without its stack frame (and ours), because a
 * driver that captures a stack per statement (mysql2 does by default) pays for every frame
 * between the event loop and its call. The caller must restore with `leaveScope` in a `finally`.
 */
export function enterScope(pool: object, lease: Lease<object>, frame: TxFrame<object> | undefined): Ambient | undefined {
  const previous = storage.getStore();
  storage.enterWith({ pool, lease, frame, parent: previous });
  return previous;
}

/** Restore the scope `enterScope` replaced. */
export function leaveScope(previous: Ambient | undefined): void {
  storage.enterWith(previous as Ambient);
}

/**
 * The refusal for a statement sent now from inside an ended transaction frame of `record`'s lease,
 * if it is one. Counted on the frame and its transaction: a COMMIT that waits to see whether the
 * body left late work behind must not go ahead when some was refused.
 */
export function endedScopeError(record: { readonly id: number }): Error | undefined {
  const frame = endedFrameOf(record);
  return frame === undefined ? undefined : refusedScope(frame, record.id);
}

/**
 * Why a call inside `ambient` may not join it, if it may not: its lease has ended (revoked at a
 * deadline or by close(), or released), or its transaction has. Such a call fails; it never falls
 * through to another connection, which would turn "rolled back" into "half committed elsewhere".
 */
export function joinRefusal(ambient: Ambient): Error | undefined {
  const record = ambient.lease.record;
  if (record.state !== 'active') return record.useError();
  const frame = ambient.frame;
  // Refused work of an ended transaction: counted, so that its COMMIT does not go ahead without it.
  if (frame !== undefined && frameEnded(frame)) return refusedScope(frame, record.id);
  return undefined;
}

/** The revoke reason when the current call chain runs in a scope of `pool` that the pool took back: it starts nothing new. */
export function abandonedScope(pool: { readonly adapter: { connect(...args: never[]): Promise<object> } }): Error | undefined {
  const ambient = findAmbient(pool);
  return ambient !== undefined && ambient.lease.state === 'revoked' ? ambient.lease.record.useError() : undefined;

}
