/**
 * Which host serves a call: the `target_session_attrs` rules over what each host said it is, the
 * lag limit for replicas, and round robin among the hosts that qualify. Pure apart from the
 * round-robin counter.
 */
import type { QueryFunction } from '../adapter';
import type { Host } from './host';
import type { ClusterTarget, HostInfo, TargetSessionAttrs } from './types';

export const TARGETS: readonly ClusterTarget[] = ['read-write', 'read-only', 'primary', 'standby', 'prefer-standby', 'any', 'replica'];

/** Why a read did not go where it was meant to (the `reason` label of `leasepool_cluster_routed_total`). */
export type RouteReason = 'target' | 'no_replica' | 'read_your_writes';

export interface Route<C extends object, Q extends QueryFunction> {
  readonly host: Host<C, Q>;
  readonly reason: RouteReason;
}

/** The part of a host that routing reads. */
type HostView = Pick<HostInfo, 'healthy' | 'role' | 'readOnly' | 'lagMs'>;

function matches(host: HostView, attrs: TargetSessionAttrs, maxLagMs: number): boolean {
  if (!host.healthy || host.role === 'unknown') return false;
  switch (attrs) {
    case 'read-write':
      return !host.readOnly;
    case 'read-only':
      return host.readOnly;
    case 'primary':
      return host.role === 'primary';
    case 'standby':
    case 'prefer-standby':
      return host.role === 'standby' && withinLag(host, maxLagMs);
    case 'any':
      return true;
  }
}

function withinLag(host: HostView, maxLagMs: number): boolean {
  if (maxLagMs === Infinity) return true;
  const lag = host.lagMs;
  return lag !== null && lag <= maxLagMs;
}

export class Router<C extends object, Q extends QueryFunction> {
  #turn = 0;

  constructor(
    private readonly hosts: readonly Host<C, Q>[],
    private readonly maxLagMs: number,
    private readonly replicaFallback: 'primary' | 'fail',
    /** The cluster's current primary: preferred for read-write / primary while it fits. */
    private readonly preferred: () => Host<C, Q> | undefined,
  ) {}

  /** The host for `target`, or undefined when none qualifies now. */
  pick(target: ClusterTarget): Route<C, Q> | undefined {
    if (target === 'replica') {
      const replica = this.#among('standby');
      if (replica !== undefined) return { host: replica, reason: 'target' };
      if (this.replicaFallback === 'fail') return undefined;
      const primary = this.pick('read-write')?.host;
      return primary === undefined ? undefined : { host: primary, reason: 'no_replica' };
    }
    if (target === 'prefer-standby') {
      const standby = this.#among('standby');
      if (standby !== undefined) return { host: standby, reason: 'target' };
      const any = this.#among('any');
      return any === undefined ? undefined : { host: any, reason: 'no_replica' };
    }
    const preferred = this.preferred();
    if ((target === 'read-write' || target === 'primary') && preferred !== undefined && matches(preferred, target, this.maxLagMs)) {
      return { host: preferred, reason: 'target' };
    }
    const host = this.#among(target);
    return host === undefined ? undefined : { host, reason: 'target' };
  }

  /** Hosts a read may use after a write: replicas within the lag limit (for waitForReplayMs). */
  replicas(): Host<C, Q>[] {
    return this.hosts.filter((h) => matches(h, 'standby', this.maxLagMs));
  }

  #among(attrs: TargetSessionAttrs): Host<C, Q> | undefined {
    const fit = this.hosts.filter((h) => matches(h, attrs, this.maxLagMs));
    if (fit.length === 0) return undefined;
    this.#turn = (this.#turn + 1) % 1_000_000;
    return fit[this.#turn % fit.length];
  }
}
