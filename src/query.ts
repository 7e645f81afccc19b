/**
 * `pool.query(…)`: one statement, typed as the driver's own `query`, on a lease of the pool (the
 * ambient one inside a scope, so it takes part in its transaction; else one of its own).
 */
import type { Adapter, QueryFunction } from './adapter';
import { LeaseMisuseError } from './errors';

export /** `pool.query`: the adapter's query function on a lease of `pool` (the ambient one, if any). */
function queryOn<C extends object, Q extends QueryFunction>(pool: { withLease<R>(fn: (conn: C) => R | PromiseLike<R>): Promise<R> }, adapter: Adapter<C, Q>): Q {
  const queryFunction = adapter.queryFunction;
  const query = (...args: unknown[]): Promise<unknown> => {
    if (typeof queryFunction !== 'function') {
      return Promise.reject(new LeaseMisuseError(`pool.query: the ${adapter.name} adapter does not say how to run a query; use pool.withLease((conn) => …)`));
    }
    return pool.withLease((conn) => (queryFunction.call(adapter, conn) as (...a: unknown[]) => Promise<unknown>)(...args));
  };
  return query as unknown as Q;
}
