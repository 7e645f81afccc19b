/**
 * The one AsyncLocalStorage that carries the ambient scope chain (see context.ts), and the two
 * operations the guard needs on it without knowing what a scope is: capture the chain current now,
 * and run a driver's callback in it later. A leaf module, so that the guard and the context share
 * it without importing each other.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export const ambientStorage = new AsyncLocalStorage<object>();

/** The scope chain current now, for a callback a driver will call later (see `runInScope`). */
export function currentScope(): object | undefined {
  return ambientStorage.getStore();
}

/**
 * Call `fn(...args)` in the scope chain `scope`. A driver's callback runs in the async context of
 * its socket, not in the scope that sent the statement: a statement the callback sends must still
 * be seen as coming from that scope (refused once its transaction has ended).
 */
export function runInScope<R>(scope: object | undefined, fn: (...args: unknown[]) => R, args: unknown[]): R {
  if (ambientStorage.getStore() === scope) return fn(...args);
  return ambientStorage.run(scope as object, fn, ...args);
}
