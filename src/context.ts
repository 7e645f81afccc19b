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

/** The innermost scope of `pool` in the current call chain whose lease is still active. */
export function findAmbient<C extends object>(pool: { readonly adapter: { connect(...args: never[]): Promise<C> } }): Ambient<C> | undefined {
  // A scope whose lease has ended (a callback that outlived it) is skipped: an outer scope of the
  // same pool may still be active.
  for (let a = storage.getStore(); a !== undefined; a = a.parent) {
    if (a.pool === pool && a.lease.state === 'active') return a as unknown as Ambient<C>;
  }
  return undefined;
}

/** Run `fn(...args)` with `lease`/`frame` as the ambient scope of `pool`. */
export function runInScope<C extends object, A extends unknown[], R>(
  pool: object,
  lease: Lease<C>,
  frame: TxFrame<C> | undefined,
  fn: (...args: A) => R,
  ...args: A
): R {
  return storage.run({ pool, lease, frame, parent: storage.getStore() } as unknown as Ambient, fn, ...args);
}
