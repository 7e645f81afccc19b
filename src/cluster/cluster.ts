/**
 * `createCluster`: one leasepool pool per host, and calls routed to the host that fits, decided by
 * asking the servers (see routing.ts) and kept current by the health loop (monitor.ts).
 *
 * - Writes (the default) go to the primary; `withTx(fn, { readOnly: true })` and `target: 'replica'`
 *   go to a replica within `maxLagMs`, or to the primary when there is none (`no_replica`).
 * - A call whose host turns out to be gone before its body ran (connect refused, connection lost at
 *   BEGIN) is routed again, up to `failoverTimeoutMs`; one whose body ran fails with the pool's error
 *   (`TxOutcomeUnknownError` if the connection was lost during COMMIT): never retried, never half
 *   applied. The host is taken out and probed with backoff until it answers.
 * - When no host is primary (it went away, a standby is being promoted), writes wait, probing every
 *   host, up to `failoverTimeoutMs`, then fail with `ConnectError`.
 */
import { EventEmitter } from 'node:events';
import type { Adapter, QueryFunction } from '../adapter';
import { ConfigError, ConnectError, PoolClosedError } from '../errors';
import type { Lease } from '../lease';
import type { LeaseScopeOptions } from '../pool-types';
import { createPool, type Pool } from '../pool';
import type { Transaction } from '../transaction';
import type { TxOptions } from '../tx-options';
import { now, sleep } from '../time';
import { hostGone, refusedAsReadOnly } from './failures';
import { Host } from './host';
import { createClusterMetrics, NOOP_CLUSTER_METRICS, type ClusterMetricsSink } from './metrics';
import { Monitor } from './monitor';
import { checkTarget, resolveClusterOptions, type ResolvedClusterOptions } from './options';
import { Router, type Route } from './routing';
import { createFrames, type Frame, type Session } from './session';
import type { ClusterCallOptions, ClusterEvents, ClusterOptions, ClusterTarget, HostInfo } from './types';

/** While calls wait for a host (a failover), every host is probed this often. */
const FAILOVER_POLL_MS = 100;
/** While a read waits for a replica to replay a write (`waitForReplayMs`), it asks this often. */
const REPLAY_POLL_MS = 20;

export class Cluster<C extends object = object, Q extends QueryFunction = QueryFunction> extends EventEmitter<ClusterEvents> {
  readonly name: string;
  /**
   * One statement on the primary (the driver's `query` signature: pg `(text, values)`, mysql2
   * `(sql, values)`); inside a call of this cluster, on that call's connection. For a read on a
   * replica use `withLease(fn, { target: 'replica' })`.
   */
  readonly query: Q;
  readonly #options: ResolvedClusterOptions;
  readonly #hosts: Host<C, Q>[];
  readonly #router: Router<C, Q>;
  readonly #monitor: Monitor<C, Q>;
  readonly #metrics: ClusterMetricsSink;
  readonly #frames = createFrames<Host<C, Q>>();
  readonly #ready: Promise<void>;
  #primary: Host<C, Q> | undefined;
  #closed = false;

  constructor(options: ClusterOptions<C, Q>) {
    super();
    const resolved = resolveClusterOptions(options);
    this.#options = resolved;
    this.name = resolved.name;
    const shared = options.pool ?? {};
    const hosts: Host<C, Q>[] = [];
    try {
      options.hosts.forEach((config, i) => {
        const hostName = resolved.hostNames[i] as string;
        const poolName = resolved.poolNames[i] as string;
        const pool = createPool(config.adapter, {
          ...shared,
          ...config.pool,
          name: poolName,
          ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
          ...(options.logger !== undefined ? { logger: options.logger } : {}),
        });
        hosts.push(new Host(hostName, config.adapter, pool));
      });
      this.#hosts = hosts;
      this.#metrics = options.metrics ? createClusterMetrics(options.metrics, resolved.name, () => this.hosts()) : NOOP_CLUSTER_METRICS;
    } catch (err) {
      for (const h of hosts) void h.pool.close({ timeoutMs: 0 });
      throw err;
    }
    this.#router = new Router(hosts, resolved.maxLagMs, resolved.replicaFallback, () => this.#primary);
    this.#monitor = new Monitor(hosts, resolved, {
      up: (host) => this.emit('hostUp', { host: host.name, role: host.role }),
      down: (host, error) => this.emit('hostDown', { host: host.name, error }),
      probed: () => this.#notePrimary(),
    });
    this.#ready = this.#monitor.probeAll().then(() => this.#monitor.start());
    this.query = ((...args: unknown[]) =>
      this.#run('read-write', (pool, started) =>
        pool.withLease(() => {
          started();
          // Inside the lease, the pool's query runs on it (the ambient lease).
          return (pool.query as unknown as (...a: unknown[]) => Promise<unknown>)(...args);
        }),
      )) as unknown as Q;
  }

  /** Resolves once every host has answered (or failed) its first probe. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /**
   * A transaction on the host `options.target` selects (default: the primary; `readOnly: true`:
   * `readOnlyTarget`, a replica by default). Nested inside another call of this cluster, it joins
   * that call's host (a savepoint there).
   */
  withTx<R>(fn: (conn: C, tx: Transaction<C>) => R | PromiseLike<R>, options: TxOptions & ClusterCallOptions = {}): Promise<R> {
    const { target, ...txOptions } = options;
    checkTarget(target);
    const chosen: ClusterTarget = target ?? (txOptions.readOnly === true ? this.#options.readOnlyTarget : 'read-write');
    return this.#run(chosen, (pool, started) => pool.withTx((conn, tx) => (started(), fn(conn, tx)), txOptions));
  }

  /** A lease on the host `options.target` selects (default: the primary). */
  withLease<R>(fn: (conn: C, lease: Lease<C>) => R | PromiseLike<R>, options: LeaseScopeOptions & ClusterCallOptions = {}): Promise<R> {
    const { target, ...leaseOptions } = options;
    checkTarget(target);
    return this.#run(target ?? 'read-write', (pool, started) => pool.withLease((conn, lease) => (started(), fn(conn, lease)), leaseOptions));
  }

  /**
   * Run `fn` as one read-your-writes session: a read after a write in it stays on the primary for
   * `readYourWritesMs` (or goes to a replica that has replayed the write, with `waitForReplayMs`).
   */
  session<R>(fn: () => R | PromiseLike<R>): Promise<R> {
    const frame = this.#frames.getStore();
    if (frame?.session !== undefined) return Promise.resolve().then(fn);
    const session: Session = { writtenAt: undefined, position: undefined };
    return this.#frames.run({ session, host: frame?.host }, () => Promise.resolve().then(fn));
  }

  /** What the cluster knows about each host now. */
  hosts(): HostInfo[] {
    return this.#hosts.map((h) => h.info());
  }

  /** The name of the current primary, if one is known. */
  primary(): string | undefined {
    return this.#primary?.name;
  }

  /** The leasepool pool of one host (its stats, leases, events). */
  pool(host: string): Pool<C, Q> {
    const found = this.#hosts.find((h) => h.name === host);
    if (found === undefined) throw new ConfigError([{ field: 'host', problem: `cluster "${this.name}" has no host ${JSON.stringify(host)} (hosts: ${this.#hosts.map((h) => h.name).join(', ')})` }]);
    return found.pool;
  }

  /** Probe every host now; resolves when all have answered or failed. */
  async refresh(): Promise<void> {
    await this.#monitor.probeAll();
    this.#notePrimary();
  }

  /** Stop probing and close every host pool (see `pool.close`). */
  async close(options: { timeoutMs?: number | undefined } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#monitor.stop();
    this.#metrics.detach();
    await Promise.all(this.#hosts.map((h) => h.pool.close(options)));
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  // ---------------------------------------------------------------- internals

  async #run<R>(target: ClusterTarget, call: (pool: Pool<C, Q>, started: () => void) => Promise<R>): Promise<R> {
    const frame = this.#frames.getStore();
    // Nested: stay on the host of the enclosing call (its pool joins the ambient scope).
    if (frame?.host !== undefined) return call(frame.host.pool, () => undefined);
    const isRead = target !== 'read-write' && target !== 'primary';
    const session = frame?.session;
    const deadline = now() + this.#options.failoverTimeoutMs;
    for (;;) {
      const route = await this.#route(target, isRead, session, deadline);
      const host = route.host;
      let bodyStarted = false;
      try {
        const result = await this.#frames.run({ session, host }, () => call(host.pool, () => (bodyStarted = true)));
        if (isRead) this.#metrics.read(host.name, route.reason);
        else if (session !== undefined) await this.#noteWrite(session, host);
        return result;
      } catch (err) {
        if (refusedAsReadOnly(err)) this.#monitor.urgent(host);
        if (hostGone(host.adapter, err) && !this.#closed) {
          if (host.failed(this.#options.probeBackoffMaxMs)) this.emit('hostDown', { host: host.name, error: err instanceof Error ? err : new Error(String(err)) });
          this.#notePrimary();
          this.#monitor.urgent();
          // Nothing of the body ran: safe to send the call elsewhere.
          if (!bodyStarted && now() < deadline) continue;
        }
        throw err;
      }
    }
  }

  async #route(target: ClusterTarget, isRead: boolean, session: Session | undefined, deadline: number): Promise<Route<C, Q>> {
    for (;;) {
      if (this.#closed) throw new PoolClosedError(this.name);
      if (isRead && session?.writtenAt !== undefined && now() - session.writtenAt < this.#options.readYourWritesMs) {
        const route = await this.#afterWrite(session);
        if (route !== undefined) return route;
      } else {
        const route = this.#router.pick(target);
        if (route !== undefined) return route;
      }
      const left = deadline - now();
      // A read with no host to go to fails at once once every host has been asked; only calls that
      // need the primary wait (for a promotion) up to failoverTimeoutMs.
      const allAsked = this.#hosts.every((h) => h.role !== 'unknown' || h.failures > 0);
      if (left <= 0 || (isRead && allAsked)) {
        const seen = this.#hosts.map((h) => `${h.name}: ${h.healthy ? h.role : 'down'}`).join(', ');
        const waited = left <= 0 ? ` after ${this.#options.failoverTimeoutMs} ms` : '';
        throw new ConnectError(`cluster "${this.name}": no host fits target ${target}${waited} (${seen})`);
      }
      // No host fits (a failover in progress, or the first probes not back yet): ask every host again.
      for (const h of this.#hosts) if (h.healthy) h.nextProbeAt = 0;
      this.#monitor.urgent();
      await sleep(Math.min(FAILOVER_POLL_MS, left));
    }
  }

  /** A read after a write in a session: a replica that replayed it (waitForReplayMs), else the primary. */
  async #afterWrite(session: Session): Promise<Route<C, Q> | undefined> {
    const position = session.position;
    if (this.#options.waitForReplayMs > 0 && position !== undefined) {
      const until = now() + this.#options.waitForReplayMs;
      for (;;) {
        for (const replica of this.#router.replicas()) {
          const replayed = await replica.pool
            .withLease((conn) => (replica.adapter.hasReplayed as (c: C, p: string) => Promise<boolean>).call(replica.adapter, conn, position), {
              acquireTimeoutMs: this.#options.probeTimeoutMs,
            })
            .catch(() => false);
          if (replayed) return { host: replica, reason: 'target' };
        }
        if (now() >= until) break;
        await sleep(REPLAY_POLL_MS);
      }
    }
    const primary = this.#router.pick('read-write');
    return primary === undefined ? undefined : { host: primary.host, reason: 'read_your_writes' };
  }

  async #noteWrite(session: Session, host: Host<C, Q>): Promise<void> {
    session.writtenAt = now();
    if (this.#options.waitForReplayMs <= 0) return;
    const adapter: Adapter<C, Q> = host.adapter;
    session.position = await host.pool
      .withLease((conn) => (adapter.writePosition as (c: C) => Promise<string>).call(adapter, conn))
      .catch(() => undefined);
  }

  /** The primary is sticky: kept while it answers as one, so a fenced-off old primary is not mixed in. */
  #notePrimary(): void {
    const current = this.#primary;
    if (current !== undefined && current.isPrimary && !current.readOnly) return;
    const next = this.#hosts.find((h) => h.isPrimary && !h.readOnly);
    this.#primary = next;
    if (next === undefined || next === this.#lastPrimary) return;
    const from = this.#lastPrimary;
    this.#lastPrimary = next;
    if (from !== undefined) this.#metrics.primaryChanged(next.name);
    this.emit('primaryChanged', { from: from?.name, to: next.name });
  }

  /** The last host seen as primary (kept while none is). */
  #lastPrimary: Host<C, Q> | undefined;
}

/**
 * Create a cluster pool over a primary and its replicas (see {@link Cluster}).
 *
 * ```ts
 * const cluster = createCluster({
 *   hosts: [{ name: 'a', adapter: pgAdapter(urlA) }, { name: 'b', adapter: pgAdapter(urlB) }],
 *   pool: { max: 10 },
 *   maxLagMs: 5_000,
 * });
 * await cluster.withTx((conn) => conn.query('INSERT …'));                   // the primary
 * await cluster.withTx((conn) => conn.query('SELECT …'), { readOnly: true }); // a replica
 * ```
 *
 * @throws ConfigError naming every bad option (an adapter without `sessionRole` among them).
 */
export function createCluster<C extends object, Q extends QueryFunction = QueryFunction>(options: ClusterOptions<C, Q>): Cluster<C, Q> {
  return new Cluster(options);
}
