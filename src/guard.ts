/**
 * The guarded connection: the driver's connection behind a Proxy. Users keep the API they know;
 * the guard refuses use after the lease ended, turns the driver's own release/end/destroy into
 * lease operations, counts statements in flight, and marks the lease broken on a fatal error.
 */
import type { Lease, LeaseRecord } from './lease';

/** Per-adapter constants the guard needs, computed once per pool. */
export interface GuardConfig {
  readonly releaseMethods: ReadonlySet<PropertyKey>;
  readonly destroyMethods: ReadonlySet<PropertyKey>;
  readonly statementMethods: ReadonlySet<PropertyKey>;
}

type AnyFn = (...args: unknown[]) => unknown;

class GuardHandler<C extends object> implements ProxyHandler<C> {
  constructor(
    private readonly record: LeaseRecord<C>,
    private readonly lease: Lease<C>,
    private readonly proxyRef: { proxy: C | undefined },
  ) {}

  get(target: C, prop: PropertyKey): unknown {
    const record = this.record;
    if (record.state !== 'active') throw record.useError();
    const value: unknown = Reflect.get(target, prop, target);
    if (typeof value !== 'function') return value;
    return wrapMethod(record, this.lease, target, prop, value as AnyFn, this.proxyRef);
  }

  set(target: C, prop: PropertyKey, value: unknown): boolean {
    if (this.record.state !== 'active') throw this.record.useError();
    return Reflect.set(target, prop, value, target);
  }

  has(target: C, prop: PropertyKey): boolean {
    if (this.record.state !== 'active') throw this.record.useError();
    return Reflect.has(target, prop);
  }

  deleteProperty(target: C, prop: PropertyKey): boolean {
    if (this.record.state !== 'active') throw this.record.useError();
    return Reflect.deleteProperty(target, prop);
  }

  defineProperty(target: C, prop: PropertyKey, descriptor: PropertyDescriptor): boolean {
    if (this.record.state !== 'active') throw this.record.useError();
    return Reflect.defineProperty(target, prop, descriptor);
  }

  ownKeys(target: C): ArrayLike<string | symbol> {
    if (this.record.state !== 'active') throw this.record.useError();
    return Reflect.ownKeys(target);
  }

  getOwnPropertyDescriptor(target: C, prop: PropertyKey): PropertyDescriptor | undefined {
    if (this.record.state !== 'active') throw this.record.useError();
    return Reflect.getOwnPropertyDescriptor(target, prop);
  }
}

function wrapMethod<C extends object>(
  record: LeaseRecord<C>,
  lease: Lease<C>,
  target: C,
  prop: PropertyKey,
  method: AnyFn,
  proxyRef: { proxy: C | undefined },
): AnyFn {
  const config = record.owner.guardConfig;
  if (config.releaseMethods.has(prop)) {
    return () => lease.release();
  }
  if (config.destroyMethods.has(prop)) {
    return () => {
      record.connection.markBroken(new Error(`${String(prop)}() called on a leased connection`));
      return lease.release();
    };
  }
  const isStatement = config.statementMethods.has(prop);
  return function guarded(this: unknown, ...args: unknown[]): unknown {
    if (record.state !== 'active') throw record.useError();
    const owner = record.owner;
    if (isStatement) {
      owner.adapter.observeStatement?.(target, prop as string, args[0]);
      const last = args.length - 1;
      if (last >= 0 && typeof args[last] === 'function') {
        // Callback form: track the statement until the callback runs.
        const callback = args[last] as AnyFn;
        record.inflight++;
        args[last] = (err: unknown, ...rest: unknown[]) => {
          record.inflight--;
          if (err) owner.noteError(record, err);
          else owner.adapter.observeResult?.(target, prop as string, rest[0]);
          return callback(err, ...rest);
        };
      }
    }
    let result: unknown;
    try {
      result = method.apply(target, args);
    } catch (err) {
      owner.noteError(record, err);
      throw err;
    }
    if (result === target) return proxyRef.proxy;
    if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
      if (!isStatement) {
        return (result as Promise<unknown>).then(undefined, (err: unknown) => {
          owner.noteError(record, err);
          throw err;
        });
      }
      record.inflight++;
      return (result as Promise<unknown>).then(
        (value) => {
          record.inflight--;
          owner.adapter.observeResult?.(target, prop as string, value);
          return value;
        },
        (err: unknown) => {
          record.inflight--;
          owner.noteError(record, err);
          throw err;
        },
      );
    }
    return result;
  };
}

/** Wrap the lease's raw connection in its guard. */
export function guardConnection<C extends object>(record: LeaseRecord<C>, lease: Lease<C>): C {
  const proxyRef: { proxy: C | undefined } = { proxy: undefined };
  const proxy = new Proxy(record.connection.raw, new GuardHandler(record, lease, proxyRef));
  proxyRef.proxy = proxy;
  return proxy;
}
