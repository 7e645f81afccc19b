/**
 * The guarded connection: the driver's connection behind a Proxy. Users keep the API they know;
 * the guard refuses use after the lease ended, turns the driver's own release/end/destroy into
 * lease operations, counts statements in flight, and marks the lease broken on a fatal error.
 */
import { LeaseReleasedError, TxAbortedError } from './errors';
import type { Adapter, CallerStack } from './adapter';
import type { GuardConfig, LeaseRecord, MethodKind } from './lease-record';
import { currentScope, runInScope } from './ambient-storage';

type AnyFn = (...args: unknown[]) => unknown;
const noop: AnyFn = () => undefined;

class GuardHandler<C extends object> implements ProxyHandler<C> {
  constructor(
    private readonly record: LeaseRecord<C>,
    private readonly proxyRef: { proxy: C | undefined },
  ) {}

  get(target: C, prop: PropertyKey): unknown {
    const record = this.record;
    // Promise machinery probes `then` on every value it resolves with (e.g. a scope that returns its
    // connection): that probe is not a use, and throwing there would reject the scope itself.
    if (prop === 'then' && !Reflect.has(target, prop)) return undefined;
    if (record.state !== 'active') {
      // With a double-release message, `conn.release` stays readable after the lease ended so
      // that calling it throws the driver's own "released twice" error (and a first call after
      // a revoke simply joins the reclaim).
      const config = record.owner.guardConfig;
      if (config.doubleReleaseMessage !== undefined && config.methodKinds.get(prop) === 'release') {
        return releaseMethod(record, target, prop);
      }
      throw record.useError();
    }
    // A plain keyed read (its receiver is `target`, as Reflect.get's would be): an inline cache
    // instead of the generic builtin on every access.
    const value: unknown = (target as Record<PropertyKey, unknown>)[prop];
    if (typeof value !== 'function') {
      // Lifecycle methods the adapter names are lease operations even where the raw connection
      // lacks them (a plain pg.Client has no release(); code written for pg-pool calls it).
      if (value === undefined) {
        const kind = record.owner.guardConfig.methodKinds.get(prop);
        if (kind === 'release' || kind === 'destroy') return wrapMethod(record, target, prop, noop, this.proxyRef);
      }
      return value;
    }
    return wrapMethod(record, target, prop, value as AnyFn, this.proxyRef);
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
  target: C,
  prop: PropertyKey,
  method: AnyFn,
  proxyRef: { proxy: C | undefined },
): AnyFn {
  const kind = record.owner.guardConfig.methodKinds.get(prop);
  if (kind === 'release') {
    return releaseMethod(record, target, prop);
  }
  if (kind === 'destroy') {
    return () => {
      record.connection.markBroken(new Error(`${String(prop)}() called on a leased connection`));
      return record.owner.releaseFromHandle(record);
    };
  }
  if (kind !== 'statement') {
    return function guarded(this: unknown, ...args: unknown[]): unknown {
      if (record.state !== 'active') throw record.useError();
      return callMethod(record, target, prop, method, args, false, proxyRef);
    };
  }
  // Kept small: V8 inlines it into the caller's frame, and every frame costs a driver that
  // captures a stack per statement (mysql2's `trace`) and the sampled acquire stacks. The stack is
  // captured here, before the statement's bookkeeping (`sendGuarded`): the capture decodes the
  // state of every optimized frame it walks, this one included, and here it holds little.
  return function guarded(this: unknown, ...args: unknown[]): unknown {
    if (record.state !== 'active' || record.txLost !== undefined || record.checkScopes) refuseStatement(record);
    const adapter = record.owner.adapter;
    if (record.txDepth > 0 && adapter.controlsTransaction?.(target, prop as string, args[0]) === true) refuseTxControl(record);
    let callerStack: CallerStack | undefined;
    if (adapter.sendStatement !== undefined && typeof args[args.length - 1] !== 'function' && adapter.traceStatement?.(target, prop as string) === true) {
      // Here, not in the adapter: the capture walks every frame down to `guarded` (see Adapter.traceStatement).
      callerStack = {};
      Error.captureStackTrace(callerStack, guarded);
    }
    return sendGuarded(record, target, prop as string, method, args, proxyRef, callerStack);
  };
}

/**
 * A statement `guarded` let through: tell the adapter, then send it (callback form: tracked until
 * its callback runs; promise form: by the adapter's `sendStatement` when it has one, with the
 * caller's stack `guarded` captured, else by the driver's own method).
 */
function sendGuarded<C extends object>(
  record: LeaseRecord<C>,
  target: C,
  prop: string,
  method: AnyFn,
  args: unknown[],
  proxyRef: { proxy: C | undefined },
  callerStack: CallerStack | undefined,
): unknown {
  const adapter = record.owner.adapter;
  adapter.observeStatement?.(target, prop, args[0]);
  const tracking = record.owner.guardConfig.trackStatements;
  if (tracking) noteStatement(record, args[0]);
  const last = args.length - 1;
  if (last >= 0 && typeof args[last] === 'function') {
    // Callback form: track the statement until the callback runs.
    const tracked = trackCallback(record, target, prop, args[last] as AnyFn);
    args[last] = tracked;
    try {
      return callMethod(record, target, prop, method, args, true, proxyRef);
    } catch (err) {
      // Refused by the driver before it was sent (mysql2's promise API takes no callback, pg a
      // missing text): its callback will never run, so it is not in flight.
      untrack(record, tracked);
      throw err;
    }
  } else if (adapter.sendStatement !== undefined) {
    const sent = sendThroughAdapter(record, target, prop, args, callerStack);
    if (sent !== undefined) return sent;
    if (tracking) noteStatement(record, args[0]); // declined: its bookkeeping ended it
  }
  return callMethod(record, target, prop, method, args, true, proxyRef);
}

/**
 * Throw when a statement may not be sent on `record` now: the lease has ended, the scope sending it
 * belongs to a transaction that has ended, or the open transaction was lost (the server rolled it
 * back): anything sent then would run outside the transaction it was written for.
 */
function refuseStatement<C extends object>(record: LeaseRecord<C>): void {
  if (record.state !== 'active') throw record.useError();
  const ended = record.checkScopes ? record.owner.scopeEnded(record) : undefined;
  if (ended !== undefined) throw ended;
  if (record.txLost !== undefined) {
    throw new TxAbortedError(
      `The transaction on lease #${record.id} is over (${describe(record.txLost)}); the statement was refused: it would run outside the transaction`,
      { cause: record.txLost },
    );
  }
}

/**
 * A statement that would end or restart the transaction withTx opened (a hand-typed COMMIT or
 * ROLLBACK): the work before it would commit or vanish on its own and the work after it would run
 * in autocommit. Refused, and the transaction can no longer commit: the withTx rejects.
 */
function refuseTxControl<C extends object>(record: LeaseRecord<C>): never {
  const error = new TxAbortedError(
    `A statement that ends or restarts the transaction (COMMIT, ROLLBACK, BEGIN …) was sent through lease #${record.id} inside withTx and refused: withTx ends its transaction itself; this one will be rolled back (throw from the body to roll back)`,
  );
  record.txLost ??= error;
  throw error;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** One statement in flight on `record` has ended; wake a body waiting for its un-awaited statements. */
function inflightEnded<C extends object>(record: LeaseRecord<C>): void {
  if (--record.inflight === 0) {
    record.sqlText = undefined;
    if (record.onDrained !== undefined) record.onDrained();
  }
}

/**
 * @internal A statement a drop-in sends on the lease's raw connection (its `pool.query()`), counted
 * in `record.inflight` by the sender: noted for the lease inspector while one is attached.
 */
export function noteSentStatement<C extends object>(record: LeaseRecord<C>, firstArg: unknown): void {
  if (record.owner.guardConfig.trackStatements) noteStatement(record, firstArg);
}

/**
 * An inspector is attached: note the statement's SQL text (the text as written: a string, pg's
 * `{ text }`, mysql2's `{ sql }`; never its parameter values) and when it was sent.
 */
function noteStatement<C extends object>(record: LeaseRecord<C>, firstArg: unknown): void {
  let text: unknown = firstArg;
  if (typeof firstArg === 'object' && firstArg !== null) {
    const config = firstArg as { text?: unknown; sql?: unknown };
    text = typeof config.text === 'string' ? config.text : config.sql;
  }
  record.sqlText = typeof text === 'string' ? text : '(statement text not available)';
  // Date.now(), not the monotonic now(): under callgrind performance.now() costs about 2% of a
  // whole `withLease` + SELECT 1 on PostgreSQL, Date.now() a quarter of that (bench: instructions).
  record.sqlStartedAt = Date.now();
}

/** Call the driver's own `method`; a statement's promise is tracked in flight, any failure noted. */
function callMethod<C extends object>(
  record: LeaseRecord<C>,
  target: C,
  prop: PropertyKey,
  method: AnyFn,
  args: unknown[],
  isStatement: boolean,
  proxyRef: { proxy: C | undefined },
): unknown {
  const owner = record.owner;
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
        inflightEnded(record);
        const adapter = owner.adapter;
        adapter.observeResult?.(target, prop as string, value);
        return adapter.guardResult === undefined ? value : adapter.guardResult(target, prop as string, value, proxyRef.proxy as C);
      },
      (err: unknown) => {
        owner.noteError(record, err);
        inflightEnded(record);
        throw err;
      },
    );
  }
  return result;
}

/** A promise-form statement sent by the adapter's `sendStatement`, tracked like any other; undefined when it declines. */
function sendThroughAdapter<C extends object>(
  record: LeaseRecord<C>,
  target: C,
  method: string,
  args: unknown[],
  callerStack: CallerStack | undefined,
): Promise<unknown> | undefined {
  record.inflight++;
  const onEnd = (err: unknown, result: unknown): void => statementEnded(record, target, method, err, result);
  let sent: Promise<unknown> | undefined;
  try {
    sent = record.owner.adapter.sendStatement?.(target, method, args, callerStack, onEnd);
  } catch (err) {
    statementEnded(record, target, method, err, undefined);
    throw err;
  }
  if (sent === undefined) inflightEnded(record);
  return sent;
}

/**
 * A statement sent with a callback (the callback form of a statement method): in flight until
 * `callback` runs, whose arguments after `err` start with the result (`(err, result, …)`, as pg's
 * and mysql2's callbacks have it). The caller has already told the adapter about the statement
 * (`observeStatement`).
 */
function trackCallback<C extends object>(record: LeaseRecord<C>, target: C, method: string, callback: AnyFn): TrackedCallback {
  record.inflight++;
  // The callback runs in the scope that sent the statement (the driver calls it from its socket's
  // context): what it sends is then refused once that scope's transaction has ended.
  const scope = currentScope();
  const tracked: TrackedCallback = (err: unknown, ...rest: unknown[]) => {
    // A driver that calls back twice must not end the statement twice.
    if (!tracked.ended) {
      tracked.ended = true;
      statementEnded(record, target, method, err, err ? undefined : rest[0]);
    }
    return runInScope(scope, callback, [err, ...rest]);
  };
  tracked.ended = false;
  return tracked;
}

/** A callback-form statement's callback as the guard tracks it: `ended` once it has run. */
type TrackedCallback = AnyFn & { ended?: boolean };

/** The callback-form statement was never sent (the driver threw): take it out of flight. */
function untrack<C extends object>(record: LeaseRecord<C>, tracked: TrackedCallback): void {
  if (tracked.ended) return;
  tracked.ended = true;
  inflightEnded(record);
}

/**
 * @internal The end of a statement counted in `record.inflight` (which the sender incremented
 * when it sent it on the lease's raw connection, as the drop-ins' `pool.query()` do): a failure
 * goes through the adapter's `isFatal`, a result to its `observeResult`.
 */
export function statementEnded<C extends object>(record: LeaseRecord<C>, target: C, method: string, err: unknown, result: unknown): void {
  // The failure is noted before the count drops: a body waiting for its statements sees it.
  if (err) record.owner.noteError(record, err);
  else record.owner.adapter.observeResult?.(target, method, result);
  inflightEnded(record);
}

/**
 * The driver's release method on `lease.conn`: ends the lease. The adapter's `onReleaseCall`
 * sees the arguments first and may ask for the connection to be destroyed (pg's
 * `release(err | true)`). A second call throws the adapter's double-release error when it has
 * one, and is otherwise ignored.
 */
function releaseMethod<C extends object>(record: LeaseRecord<C>, target: C, prop: PropertyKey): AnyFn {
  return (...args: unknown[]): unknown => {
    const owner = record.owner;
    if (record.releaseCalled || record.state === 'released') {
      const message = owner.guardConfig.doubleReleaseMessage;
      if (message !== undefined) throw new LeaseReleasedError(record.id, message);
      return owner.releaseFromHandle(record);
    }
    record.releaseCalled = true;
    let destroy = false;
    let hookFailed = false;
    let hookError: unknown;
    const hook = owner.adapter.onReleaseCall;
    if (hook !== undefined) {
      try {
        destroy = hook.call(owner.adapter, target, String(prop), args) === true;
      } catch (err) {
        hookFailed = true;
        hookError = err;
      }
    }
    if (destroy && record.state === 'active') {
      const reason = args[0] instanceof Error ? args[0] : new Error(`${String(prop)}(${typeof args[0]}) asked to destroy the connection`);
      record.connection.markBroken(reason);
    }
    const released = owner.releaseFromHandle(record);
    if (hookFailed) {
      released.catch(noop);
      throw hookError;
    }
    return released;
  };
}

/** Wrap the lease's raw connection in its guard. */
export function guardConnection<C extends object>(record: LeaseRecord<C>): C {
  const proxyRef: { proxy: C | undefined } = { proxy: undefined };
  const proxy = new Proxy(record.connection.raw, new GuardHandler(record, proxyRef));
  proxyRef.proxy = proxy;
  return proxy;
}

/** The guard's per-adapter constants: which methods of the raw connection are statements and lease operations. */
export function guardConfigOf(adapter: Adapter<object>): GuardConfig {
  const lifecycle = adapter.lifecycleMethods;
  const methodKinds = new Map<PropertyKey, MethodKind>();
  for (const name of adapter.statementMethods ?? ['query', 'execute']) methodKinds.set(name, 'statement');
  for (const name of lifecycle?.destroy ?? []) methodKinds.set(name, 'destroy');
  for (const name of lifecycle?.release ?? []) methodKinds.set(name, 'release');
  return { methodKinds, doubleReleaseMessage: lifecycle?.doubleReleaseMessage, trackStatements: false };
}
