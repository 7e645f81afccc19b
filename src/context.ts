/**
 * The ambient context: which lease (and which transaction frame) the current async call chain
 * holds, per pool. Pool calls made inside a scope join it instead of taking a second connection.
 * One AsyncLocalStorage for all pools; each scope pushes a small immutable link.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Lease } from './lease';
import type { TxFrame } from './transaction';

export interface Ambient<C extends object = object> {
  readonly pool: object;
  readonly lease: Lease<C>;
  /** Innermost open transaction frame of this lease in this call chain, if any. */
  readonly frame: TxFrame<C> | undefined;
  readonly parent: Ambient | undefined;
}

const storage = new AsyncLocalStorage<Ambient>();

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


/** The scope chain current now, for a callback a driver will call later (see `runInScope`). */
export function currentScope(): Ambient | undefined {
  return storage.getStore();
}

/**
 * Call `fn(...args)` in the scope chain `scope`. A driver's callback runs in the async context of
 * its socket, not in the scope that sent the statement: a statement the callback sends must still
 * be seen as coming from that scope (refused once its transaction has ended).
 */
export function runInScope<R>(scope: Ambient | undefined, fn: (...args: unknown[]) => R, args: unknown[]): R {
  if (storage.getStore() === scope) return fn(...args);
  return storage.run(scope as Ambient, fn, ...args);
}
