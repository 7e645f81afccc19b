/**
 * The cluster's own Prometheus series. Like every leasepool series they carry `pool`: the pool of
 * the host they are about (`<cluster>:<host>`, the same pool whose `leasepool_*` series describe
 * that host's connections), so a dashboard's `pool` selection gives the per-host view; `cluster`
 * and `host` say which cluster and host that pool serves.
 * - `leasepool_cluster_host_up{pool,cluster,host,role}` gauge: 1 while the host answers, 0 while it is out;
 * - `leasepool_cluster_replica_lag_seconds{pool,cluster,host}` gauge: replication lag (0 on the primary);
 * - `leasepool_cluster_reads_total{pool,cluster,host,reason}` counter: reads the host served, and why
 *   they went there (`target`: where asked; `no_replica`: to the primary, no replica fit;
 *   `read_your_writes`: to the primary after a write in the session);
 * - `leasepool_cluster_primary_changes_total{pool,cluster,host}` counter: times this host became the
 *   primary after another one (failovers).
 * Gauges are computed at scrape time. (`pool` is `<cluster>:<host>` unless the host's `poolName` says otherwise.)
 */
import type { Counter, Registry } from 'prom-client';
import { ConfigError } from '../errors';
import { loadPromClient, metricSetFor, type MetricsOptions } from '../metrics';
import type { HostInfo } from './types';
import type { RouteReason } from './routing';

export interface ClusterMetricsSink {
  read(host: string, reason: RouteReason): void;
  /** `host` became the primary after another host. */
  primaryChanged(host: string): void;
  detach(): void;
}

export const NOOP_CLUSTER_METRICS: ClusterMetricsSink = { read: () => undefined, primaryChanged: () => undefined, detach: () => undefined };

type Labels = 'pool' | 'cluster' | 'host';

interface ClusterMetricSet {
  readonly sources: Map<string, () => readonly HostInfo[]>;
  readonly reads: Counter<Labels | 'reason'>;
  readonly primaryChanges: Counter<Labels>;
}

const setsByRegistry = new WeakMap<Registry, Map<string, ClusterMetricSet>>();

const REASONS: readonly RouteReason[] = ['target', 'no_replica', 'read_your_writes'];

function createSet(registry: Registry, prefix: string): ClusterMetricSet {
  const prom = loadPromClient();
  const registers = [registry];
  const sources = new Map<string, () => readonly HostInfo[]>();
  new prom.Gauge({
    name: `${prefix}cluster_host_up`,
    help: 'Cluster hosts: 1 while the host answers its probes, 0 while it is taken out of routing',
    labelNames: ['pool', 'cluster', 'host', 'role'],
    registers,
    collect() {
      this.reset();
      for (const [cluster, hosts] of sources) {
        for (const h of hosts()) this.set({ pool: h.pool, cluster, host: h.name, role: h.role }, h.healthy ? 1 : 0);
      }
    },
  });
  new prom.Gauge({
    name: `${prefix}cluster_replica_lag_seconds`,
    help: 'Replication lag of each cluster host in seconds (0 on the primary; counted up while replication is stopped)',
    labelNames: ['pool', 'cluster', 'host'],
    registers,
    aggregator: 'max',
    collect() {
      this.reset();
      for (const [cluster, hosts] of sources) {
        for (const h of hosts()) if (h.lagMs !== null) this.set({ pool: h.pool, cluster, host: h.name }, h.lagMs / 1000);
      }
    },
  });
  return {
    sources,
    reads: new prom.Counter({
      name: `${prefix}cluster_reads_total`,
      help: 'Reads each cluster host served, by why they went there (target, no_replica, read_your_writes)',
      labelNames: ['pool', 'cluster', 'host', 'reason'],
      registers,
    }),
    primaryChanges: new prom.Counter({
      name: `${prefix}cluster_primary_changes_total`,
      help: 'Times this host became the primary after another one (failovers)',
      labelNames: ['pool', 'cluster', 'host'],
      registers,
    }),
  };
}

export function createClusterMetrics(options: MetricsOptions, cluster: string, hosts: () => readonly HostInfo[]): ClusterMetricsSink {
  const prefix = options.prefix ?? 'leasepool_';
  const set = metricSetFor(setsByRegistry, options.registry, prefix, () => createSet(options.registry, prefix));
  if (set.sources.has(cluster)) throw new ConfigError([{ field: 'name', problem: `"${cluster}" is already used by an open cluster on this metrics registry` }]);
  set.sources.set(cluster, hosts);
  const m = set;
  const poolOf = new Map(hosts().map((h) => [h.name, h.pool]));
  const labels = (host: string): Record<Labels, string> => ({ pool: poolOf.get(host) ?? host, cluster, host });
  // Every series at 0 from the start, so increase() sees the first event.
  for (const h of hosts()) {
    m.primaryChanges.labels(labels(h.name)).inc(0);
    for (const reason of REASONS) m.reads.labels({ ...labels(h.name), reason }).inc(0);
  }
  return {
    read: (host, reason) => m.reads.labels({ ...labels(host), reason }).inc(),
    primaryChanged: (host) => m.primaryChanges.labels(labels(host)).inc(),
    detach: () => {
      if (m.sources.get(cluster) === hosts) m.sources.delete(cluster);
    },
  };
}
