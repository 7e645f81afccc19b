/**
 * One host of a cluster: its leasepool pool, and what the cluster has learnt by asking the server
 * (role, read-only, lag) and by using it (healthy or not, failures in a row, next probe time).
 */
import type { Adapter, QueryFunction, SessionRole } from '../adapter';
import type { Pool } from '../pool';
import { now } from '../time';
import type { HostInfo } from './types';

const BACKOFF_FIRST_MS = 100;

export class Host<C extends object, Q extends QueryFunction = QueryFunction> {
  role: HostInfo['role'] = 'unknown';
  readOnly = false;
  healthy = false;
  failures = 0;
  /** performance.now() of the next probe. */
  nextProbeAt = 0;
  probing: Promise<void> | undefined;
  /** The lag the server last reported, and when (for lag counted up while replication is stopped). */
  #reportedLagMs: number | null = null;
  #reportedAt = 0;
  #stalled = false;

  constructor(
    readonly name: string,
    readonly adapter: Adapter<C, Q>,
    readonly pool: Pool<C, Q>,
  ) {}

  /** Lag now: as reported, or, while replication is stopped, the last known value plus the time since. */
  get lagMs(): number | null {
    if (this.#reportedLagMs === null) return null;
    return this.#stalled ? this.#reportedLagMs + (now() - this.#reportedAt) : this.#reportedLagMs;
  }

  get isPrimary(): boolean {
    return this.healthy && this.role === 'primary';
  }

  /** A probe answered. Returns whether the host came back (was not healthy before). */
  answered(role: SessionRole, intervalMs: number): boolean {
    const cameBack = !this.healthy;
    this.healthy = true;
    this.failures = 0;
    this.role = role.standby ? 'standby' : 'primary';
    this.readOnly = role.readOnly;
    const at = now();
    if (role.lagMs === null) {
      if (!this.#stalled) {
        // Replication stopped: count up from the last value known (0 if none yet).
        this.#stalled = true;
        this.#reportedLagMs ??= 0;
        this.#reportedAt = this.#reportedAt === 0 ? at : this.#reportedAt;
      }
    } else {
      this.#stalled = false;
      this.#reportedLagMs = role.lagMs;
      this.#reportedAt = at;
    }
    this.nextProbeAt = at + intervalMs;
    return cameBack;
  }

  /** A probe or a call found the host gone. Returns whether it was healthy before. */
  failed(backoffMaxMs: number): boolean {
    const wasHealthy = this.healthy;
    this.healthy = false;
    this.failures++;
    this.nextProbeAt = now() + Math.min(backoffMaxMs, BACKOFF_FIRST_MS * 2 ** Math.min(this.failures - 1, 20));
    return wasHealthy;
  }

  info(): HostInfo {
    return { name: this.name, pool: this.pool.name, role: this.role, readOnly: this.readOnly, healthy: this.healthy, lagMs: this.lagMs, failures: this.failures };
  }
}
