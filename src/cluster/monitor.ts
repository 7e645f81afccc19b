/**
 * The health loop: one unref'd timer, set to the earliest probe due. A probe asks a host's server
 * what it is (`Adapter.sessionRole`) on a lease of the host's own pool, bounded by
 * `probeTimeoutMs`. A healthy host is probed every `healthCheckIntervalMs`; a failed one after a
 * doubling backoff, until it answers again. `urgent()` probes now (a call found a host gone, or
 * writes wait for a primary).
 */
import type { QueryFunction, SessionRole } from '../adapter';
import { AcquireTimeoutError, NestedAcquireError, PoolQueueFullError } from '../errors';
import { now } from '../time';
import type { Host } from './host';

export interface MonitorConfig {
  readonly healthCheckIntervalMs: number;
  readonly probeTimeoutMs: number;
  readonly probeBackoffMaxMs: number;
}

export interface MonitorEvents<C extends object, Q extends QueryFunction> {
  up(host: Host<C, Q>): void;
  down(host: Host<C, Q>, error: Error): void;
  /** After every probe (any outcome): roles may have changed. */
  probed(host: Host<C, Q>): void;
}

export class Monitor<C extends object, Q extends QueryFunction> {
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #waiters = new Set<() => void>();

  constructor(
    private readonly hosts: readonly Host<C, Q>[],
    private readonly config: MonitorConfig,
    private readonly events: MonitorEvents<C, Q>,
  ) {}

  start(): void {
    this.#tick();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
  }

  /** Probe `host` (or every host that is not healthy, with none given) at once. */
  urgent(host?: Host<C, Q>): void {
    const at = now();
    for (const h of host === undefined ? this.hosts.filter((x) => !x.healthy || x.role === 'unknown') : [host]) h.nextProbeAt = Math.min(h.nextProbeAt, at);
    this.#tick();
  }

  /** Resolves after the next probe completes (or `ms` passes, or the monitor stops). */
  nextProbe(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(1, ms));
      this.#waiters.add(wake);
    });
  }

  /** Probe every host now and wait for all the answers (start-up, tests). */
  async probeAll(): Promise<void> {
    await Promise.all(this.hosts.map((h) => this.#probe(h)));
  }

  #tick(): void {
    if (this.#stopped) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const at = now();
    let next = Infinity;
    for (const host of this.hosts) {
      if (host.probing !== undefined) continue;
      if (host.nextProbeAt <= at) void this.#probe(host);
      else next = Math.min(next, host.nextProbeAt);
    }
    if (next !== Infinity) {
      this.#timer = setTimeout(() => this.#tick(), Math.max(1, next - at));
      this.#timer.unref();
    }
  }

  #probe(host: Host<C, Q>): Promise<void> {
    if (host.probing !== undefined) return host.probing;
    const ask = host.adapter.sessionRole;
    const probing = host.pool
      .withLease((conn) => (ask as (c: C) => Promise<SessionRole>).call(host.adapter, conn), {
        acquireTimeoutMs: this.config.probeTimeoutMs,
        timeoutMs: this.config.probeTimeoutMs,
      })
      .then(
        (role) => {
          if (this.#stopped) return;
          if (host.answered(role, this.config.healthCheckIntervalMs)) this.events.up(host);
        },
        (err: unknown) => {
          if (this.#stopped) return; // the cluster is closing: its pools refuse, the host is not down
          // Every connection leased: the host is loaded, not gone (a connect that hangs is not this:
          // then connections are missing, not busy). Ask again at the next interval.
          const stats = host.pool.stats();
          const saturated = stats.active >= stats.max;
          if ((err instanceof AcquireTimeoutError && saturated) || err instanceof PoolQueueFullError || err instanceof NestedAcquireError) {
            host.nextProbeAt = now() + this.config.healthCheckIntervalMs;
            return;
          }
          const error = err instanceof Error ? err : new Error(String(err));
          if (host.failed(this.config.probeBackoffMaxMs) || host.failures === 1) this.events.down(host, error);
        },
      )
      .finally(() => {
        host.probing = undefined;
        if (this.#stopped) return;
        this.events.probed(host);
        for (const wake of [...this.#waiters]) wake();
        this.#tick();
      });
    host.probing = probing;
    return probing;
  }
}
