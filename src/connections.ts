/**
 * Raw connections as the pool holds them, and the factory generic-pool calls to open and close
 * them. The factory is where generic-pool's traps are defused: a failing connect is always
 * asynchronous and backed off, waiting callers hear about it at once, a late connect is closed.
 */
import { setMaxListeners } from 'node:events';
import type { Factory } from 'generic-pool';
import type { Adapter } from './adapter';
import { ConnectError } from './errors';
import type { CloseReason } from './metrics';
import { redact, redactError } from './redact';
import { raceAbort, withTimeout } from './time';

let nextConnectionId = 1;

/** A raw driver connection plus what the pool knows about it. */
export class PooledConnection<C extends object = object> {
  readonly id = nextConnectionId++;
  uses = 0;
  /** Set when the connection must never be reused (fatal error, user end(), failed rollback). */
  broken = false;
  brokenBy: unknown = undefined;
  /** Why it is being closed; read by the factory's destroy for the metric. */
  closeReason: CloseReason | undefined = undefined;
  leased = false;

  constructor(
    readonly raw: C,
    readonly createdAt: number,
    /**
     * performance.now() after which the connection is retired at release (or at the next eviction
     * run if idle). Writable: the pg drop-in expires connections on pg-pool's own clock.
     */
    public expiresAt: number,
  ) {}

  markBroken(cause: unknown): void {
    if (!this.broken) {
      this.broken = true;
      this.brokenBy = cause;
    }
  }
}

/** What the factory tells the pool. */
export interface FactoryEvents<C extends object> {
  /** `createSeconds`: from the start of the attempt to the connection in hand. */
  created(conn: PooledConnection<C>, createSeconds: number): void;
  /** A connect that began at `startedAt` (performance.now()) failed; waiting callers should get `error` now. */
  connectFailed(error: ConnectError, startedAt: number): void;
  /** The driver reported an error on a connection (idle or leased). */
  connectionError(conn: PooledConnection<C>, err: unknown): void;
  closed(conn: PooledConnection<C>, reason: CloseReason): void;
  closeFailed(conn: PooledConnection<C>, err: unknown): void;
}

export interface FactoryOptions {
  readonly connectTimeoutMs: number;
  readonly maxLifetimeMs: number;
  /** Bound on one close; a dead socket never holds shutdown. */
  readonly closeTimeoutMs: number;
  /** `'one'` (pg-pool's semantics): no growing backoff between failed attempts, only a turn of the event loop. */
  readonly connectFailure?: 'all' | 'one' | undefined;
}

/**
 * The backoff after a failed connect: doubling from the first step to the cap, each sleep drawn
 * from its upper half. The cap bounds how late a recovered server is noticed (the attempts that
 * are sleeping are the pool's probes); the jitter spreads those probes, so that with several
 * connects failing together one of them tries again soon after the server is back, while a
 * server that stays down sees a few attempts per connection slot and second, not a storm.
 */
const BACKOFF_FIRST_MS = 50;
const BACKOFF_MAX_MS = 250;

function backoffAfter(consecutiveFailures: number): number {
  const step = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (consecutiveFailures - 1));
  return step / 2 + Math.random() * (step / 2);
}

/**
 * The generic-pool factory. `create` never rejects synchronously or before a real wait
 * (generic-pool would spin), and sleeps a growing backoff after a failure before reporting
 * it to generic-pool, which otherwise retries ~200 times a second.
 */
export function createFactory<C extends object>(
  adapter: Adapter<C>,
  options: FactoryOptions,
  events: FactoryEvents<C>,
): Factory<PooledConnection<C>> & { liveCount: number; stop(): void } {
  let consecutiveFailures = 0;
  // Aborted by stop() (pool close): connects in flight give up and backoff sleeps end at once,
  // so close() is not held by a dead server or a backoff.
  const stopping = new AbortController();
  // Each create in flight (and each backoff sleep) listens on it: with max > 5 and a database that
  // is down, Node would print a MaxListenersExceededWarning for what is not a leak.
  setMaxListeners(0, stopping.signal);
  // Backoffs under way. A connect that succeeds ends them: the server is back, and the slots they
  // hold (generic-pool counts a sleeping create as one in flight) should try again now, not when
  // their sleep is over.
  const backoffs = new Set<() => void>();
  const backoff = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const end = (): void => {
        clearTimeout(timer);
        stopping.signal.removeEventListener('abort', end);
        backoffs.delete(end);
        resolve();
      };
      const timer = setTimeout(end, ms);
      timer.unref();
      stopping.signal.addEventListener('abort', end, { once: true });
      backoffs.add(end);
    });
  const state = {
    liveCount: 0,
    async create(): Promise<PooledConnection<C>> {
      if (stopping.signal.aborted) {
        // generic-pool tops up `min` after each destroy, also while close() reclaims: open nothing.
        await Promise.resolve();
        throw new ConnectError(`Not connecting to ${adapter.name} at ${redact(adapter.target)}: the pool is closing`);
      }
      const startedAt = performance.now();
      let pooled: PooledConnection<C> | undefined;
      let earlyError: unknown;
      const controller = new AbortController();
      const timer = setTimeout(() => {
        controller.abort(new ConnectError(`Connecting to ${adapter.name} at ${redact(adapter.target)} timed out after ${options.connectTimeoutMs} ms`));
      }, options.connectTimeoutMs);
      const onStop = (): void => controller.abort(new ConnectError(`Connecting to ${adapter.name} at ${redact(adapter.target)} abandoned: the pool is closing`));
      if (stopping.signal.aborted) onStop();
      else stopping.signal.addEventListener('abort', onStop, { once: true });
      // An adapter that throws synchronously still fails asynchronously, with backoff (a create
      // that rejects before its first await makes generic-pool spin).
      const connecting = new Promise<C>((resolve) =>
        resolve(
          adapter.connect(controller.signal, {
            onError(err: unknown) {
              if (pooled === undefined) earlyError ??= err;
              else events.connectionError(pooled, err);
            },
          }),
        ),
      );
      try {
        const raw = await raceAbort(connecting, controller.signal);
        if (earlyError !== undefined) throw earlyError;
        const now = performance.now();
        // Up to 2.5% jitter so connections opened together do not all retire together.
        const lifetime = options.maxLifetimeMs === Infinity ? Infinity : options.maxLifetimeMs * (1 - Math.random() * 0.025);
        pooled = new PooledConnection(raw, now, now + lifetime);
        consecutiveFailures = 0;
        for (const end of [...backoffs]) end();
        state.liveCount++;
        events.created(pooled, (now - startedAt) / 1000);
        return pooled;
      } catch (err) {
        // A connection that completes after its deadline is closed, not kept.
        connecting.then((late) => adapter.close(late).catch(() => undefined), () => undefined);
        const error = toConnectError(adapter, err);
        if (stopping.signal.aborted) throw error;
        consecutiveFailures++;
        events.connectFailed(error, startedAt);
        // Even without backoff the failure reaches generic-pool after a timer, never within the
        // same turn (a create that rejects within microtasks makes generic-pool spin).
        const backoffMs = options.connectFailure === 'one' ? 0 : backoffAfter(consecutiveFailures);
        await backoff(backoffMs);
        throw error;
      } finally {
        clearTimeout(timer);
        stopping.signal.removeEventListener('abort', onStop);
      }
    },
    stop(): void {
      stopping.abort();
    },
    async destroy(conn: PooledConnection<C>): Promise<void> {
      const reason = conn.closeReason ?? 'idle';
      state.liveCount--;
      try {
        await withTimeout(adapter.close(conn.raw), options.closeTimeoutMs);
      } catch (err) {
        events.closeFailed(conn, err);
      }
      events.closed(conn, reason);
    },
  };
  return state;
}

function toConnectError(adapter: Adapter<object>, err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const cause = redactError(err);
  return new ConnectError(`Could not connect to ${adapter.name} at ${redact(adapter.target)}: ${cause.message}`, { cause });
}
