/**
 * The cluster's own Prometheus series (each host pool has the usual `leasepool_*` series under
 * the pool name `<cluster>:<host>`):
 * - `leasepool_cluster_host_up{pool,host,role}` gauge: 1 while the host answers, 0 while it is out;
 * - `leasepool_cluster_replica_lag_seconds{pool,host}` gauge: replication lag (0 on the primary);
 * - `leasepool_cluster_reads_total{pool,host,reason}` counter: reads by where they went and why
 *   (`target`: where asked; `no_replica`: to the primary, no healthy replica; `read_your_writes`);
 * - `leasepool_cluster_primary_changes_total{pool}` counter: failovers seen.
 * Gauges are computed at scrape time.
 */
import type { Counter, Registry } from 'prom-client';
import { ConfigError } from '../errors';
import { loadPromClient, type MetricsOptions } from '../metrics';
import type { HostInfo } from './types';
import type { RouteReason } from './routing';

export interface ClusterMetricsSink {
  read(host: string, reason: RouteReason): void;
  primaryChanged(): void;
  detach(): void;
}

export const NOOP_CLUSTER_METRICS: ClusterMetricsSink = { read: () => undefined, primaryChanged: () => undefined, detach: () => undefined };

interface ClusterMetricSet {
  readonly sources: Map<string, () => readonly HostInfo[]>;
  readonly reads: Counter<'pool' | 'host' | 'reason'>;
  readonly primaryChanges: Counter<'pool'>;
}

const setsByRegistry = new WeakMap<Registry, Map<string, ClusterMetricSet>>();

function createSet(registry: Registry, prefix: string): ClusterMetricSet {
  const prom = loadPromClient();
  const registers = [registry];
  const sources = new Map<string, () => readonly HostInfo[]>();
  new prom.Gauge({
    name: `${prefix}cluster_host_up`,
    help: 'Cluster hosts: 1 while the host answers its probes, 0 while it is taken out',
    labelNames: ['pool', 'host', 'role'],
    registers,
    collect() {
      this.reset();
      for (const [pool, hosts] of sources) for (const h of hosts()) this.set({ pool, host: h.name, role: h.role }, h.healthy ? 1 : 0);
    },
  });
  new prom.Gauge({
    name: `${prefix}cluster_replica_lag_seconds`,
    help: 'Replication lag of each cluster host in seconds (0 on the primary; counted up while replication is stopped)',
    labelNames: ['pool', 'host'],
    registers,
    aggregator: 'max',
    collect() {
      this.reset();
      for (const [pool, hosts] of sources) {
        for (const h of hosts()) if (h.lagMs !== null) this.set({ pool, host: h.name }, h.lagMs / 1000);
      }
    },
  });
  return {
    sources,
    reads: new prom.Counter({ name: `${prefix}cluster_reads_total`, help: 'Reads by host and why they went there', labelNames: ['pool', 'host', 'reason'], registers }),
    primaryChanges: new prom.Counter({ name: `${prefix}cluster_primary_changes_total`, help: 'Times a different host became the primary', labelNames: ['pool'], registers }),
  };
}

export function createClusterMetrics(options: MetricsOptions, name: string, hosts: () => readonly HostInfo[]): ClusterMetricsSink {
  const prefix = options.prefix ?? 'leasepool_';
  let byPrefix = setsByRegistry.get(options.registry);
  if (byPrefix === undefined) {
    byPrefix = new Map();
    setsByRegistry.set(options.registry, byPrefix);
  }
  let set = byPrefix.get(prefix);
  if (set === undefined) {
    set = createSet(options.registry, prefix);
    byPrefix.set(prefix, set);
  }
  if (set.sources.has(name)) throw new ConfigError([{ field: 'name', problem: `"${name}" is already used by an open cluster on this metrics registry` }]);
  set.sources.set(name, hosts);
  const m = set;
  m.primaryChanges.labels({ pool: name }).inc(0);
  for (const h of hosts()) for (const reason of ['target', 'no_replica', 'read_your_writes']) m.reads.labels({ pool: name, host: h.name, reason }).inc(0);
  return {
    read: (host, reason) => m.reads.labels({ pool: name, host, reason }).inc(),
    primaryChanged: () => m.primaryChanges.labels({ pool: name }).inc(),
    detach: () => {
      if (m.sources.get(name) === hosts) m.sources.delete(name);
    },
  };
}
