/**
 * Metrics: the core reports events to a `MetricsSink`; with metrics off it is a no-op object,
 * so the hot path pays one empty call. The prom-client sink puts the fixed `leasepool_*` series
 * into the registry the user passes (one set of metric objects per registry, shared by pools,
 * told apart by the `pool` label). Gauges are computed in `collect()` at scrape time.
 */
import type { Registry, Counter, Gauge, Histogram } from 'prom-client';
import { ConfigError } from './errors';

/** `metrics` option of `createPool`. */
export interface MetricsOptions {
  /** prom-client `Registry` to register into (never the global one unless you pass it). */
  registry: Registry;
  /** Metric name prefix. Default `'leasepool_'`. */
  prefix?: string;
  /** Histogram buckets in seconds. Default: 0.5 ms … 30 s. */
  buckets?: number[];
}

export type AcquireOutcome = 'success' | 'timeout' | 'aborted' | 'rejected' | 'error';
export type TxOutcome = 'commit' | 'rollback' | 'retry' | 'unknown';
export type CloseReason = 'idle' | 'lifetime' | 'max_uses' | 'broken' | 'validation' | 'reset' | 'reclaimed' | 'shutdown';
/**
 * How the pool cleaned up after its users. `deadline`: a lease or transaction revoked at a deadline
 * someone asked for (`timeoutMs`, the pool's `leaseTimeoutMs`) before the leak detector had reported
 * it: a policy at work, not a fault. `leak_reclaimed`: revoked at its deadline after the leak detector
 * had reported it (held past `leakDetectionMs`).
 */
export type RecoveryKind =
  | 'rollback_on_release'
  | 'broken_connection'
  | 'deadline'
  | 'leak_reclaimed'
  | 'gc_reclaimed'
  | 'shutdown_reclaimed'
  | 'cleanup_error';

/** What the pool reports. Durations in seconds. */
export interface MetricsSink {
  acquired(waitSeconds: number): void;
  acquireFailed(outcome: Exclude<AcquireOutcome, 'success'>): void;
  released(leaseSeconds: number): void;
  transaction(outcome: TxOutcome, durationSeconds: number | undefined): void;
  connectionCreated(createSeconds: number): void;
  connectionClosed(reason: CloseReason): void;
  leakDetected(): void;
  recovery(kind: RecoveryKind): void;
  /** Stop reporting this pool (its gauges vanish; counters keep their last values). */
  detach(): void;
}

/** Where scrape-time gauges come from. */
export interface GaugeSource {
  readonly name: string;
  gaugeSnapshot(): { idle: number; active: number; pendingCreate: number; max: number; pending: number; oldestLeaseSeconds: number };
}

const noop = (): void => {};
export const NOOP_METRICS: MetricsSink = {
  acquired: noop,
  acquireFailed: noop,
  released: noop,
  transaction: noop,
  connectionCreated: noop,
  connectionClosed: noop,
  leakDetected: noop,
  recovery: noop,
  detach: noop,
};

const CLOSE_REASONS: readonly CloseReason[] = ['idle', 'lifetime', 'max_uses', 'broken', 'validation', 'reset', 'reclaimed', 'shutdown'];
const RECOVERY_KINDS: readonly RecoveryKind[] = [
  'rollback_on_release',
  'broken_connection',
  'deadline',
  'leak_reclaimed',
  'gc_reclaimed',
  'shutdown_reclaimed',
  'cleanup_error',
];

const DEFAULT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface MetricSet {
  readonly sources: Map<string, GaugeSource>;
  readonly leaseDuration: Histogram<'pool'>;
  readonly acquireWait: Histogram<'pool'>;
  readonly txDuration: Histogram<'pool' | 'outcome'>;
  readonly acquires: Counter<'pool' | 'outcome'>;
  readonly transactions: Counter<'pool' | 'outcome'>;
  readonly created: Counter<'pool'>;
  readonly closed: Counter<'pool' | 'reason'>;
  readonly leaks: Counter<'pool'>;
  readonly recoveries: Counter<'pool' | 'kind'>;
}

const setsByRegistry = new WeakMap<Registry, Map<string, MetricSet>>();

/**
 * The one set of metric objects of `registry` under `prefix`, made by `create` the first time
 * (prom-client refuses a second metric of the same name on a registry): pools, and clusters,
 * sharing a registry share the metrics and differ by their labels.
 */
export function metricSetFor<S>(cache: WeakMap<Registry, Map<string, S>>, registry: Registry, prefix: string, create: () => S): S {
  let byPrefix = cache.get(registry);
  if (byPrefix === undefined) {
    byPrefix = new Map();
    cache.set(registry, byPrefix);
  }
  let set = byPrefix.get(prefix);
  if (set === undefined) {
    set = create();
    byPrefix.set(prefix, set);
  }
  return set;
}

type PromClient = typeof import('prom-client');
export function loadPromClient(): PromClient {
  try {
    // Optional peer dependency: loaded only when metrics are asked for.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('prom-client') as PromClient;
  } catch (cause) {
    throw new ConfigError([{ field: 'metrics', problem: `needs the prom-client package installed (${String(cause)})` }]);
  }
}

function createMetricSet(prom: PromClient, registry: Registry, prefix: string, buckets: number[]): MetricSet {
  const sources = new Map<string, GaugeSource>();
  const registers = [registry];
  const snapshots = (): Array<[string, ReturnType<GaugeSource['gaugeSnapshot']>]> =>
    [...sources.values()].map((s) => [s.name, s.gaugeSnapshot()]);

  new prom.Gauge({
    name: `${prefix}connections`,
    help: 'Open connections by state (idle, active = leased, pending_create = being opened)',
    labelNames: ['pool', 'state'],
    registers,
    collect() {
      this.reset();
      for (const [pool, s] of snapshots()) {
        this.set({ pool, state: 'idle' }, s.idle);
        this.set({ pool, state: 'active' }, s.active);
        this.set({ pool, state: 'pending_create' }, s.pendingCreate);
      }
    },
  });
  new prom.Gauge({
    name: `${prefix}connections_max`,
    help: 'Configured maximum number of connections',
    labelNames: ['pool'],
    registers,
    collect() {
      this.reset();
      for (const [pool, s] of snapshots()) this.set({ pool }, s.max);
    },
  });
  new prom.Gauge({
    name: `${prefix}acquires_pending`,
    help: 'Callers waiting for a lease',
    labelNames: ['pool'],
    registers,
    collect() {
      this.reset();
      for (const [pool, s] of snapshots()) this.set({ pool }, s.pending);
    },
  });
  new prom.Gauge({
    name: `${prefix}lease_oldest_seconds`,
    help: 'Age of the oldest active lease in seconds (0 when none)',
    labelNames: ['pool'],
    registers,
    aggregator: 'max',
    collect() {
      this.reset();
      for (const [pool, s] of snapshots()) this.set({ pool }, s.oldestLeaseSeconds);
    },
  });
  return {
    sources,
    leaseDuration: new prom.Histogram({ name: `${prefix}lease_duration_seconds`, help: 'Time from acquire to release', labelNames: ['pool'], buckets, registers }),
    acquireWait: new prom.Histogram({ name: `${prefix}acquire_wait_seconds`, help: 'Time from acquire call to lease in hand', labelNames: ['pool'], buckets, registers }),
    txDuration: new prom.Histogram({
      name: `${prefix}transaction_duration_seconds`,
      help: 'Time from BEGIN to COMMIT or ROLLBACK',
      labelNames: ['pool', 'outcome'],
      buckets,
      registers,
    }),
    acquires: new prom.Counter({ name: `${prefix}acquires_total`, help: 'Acquire calls by outcome', labelNames: ['pool', 'outcome'], registers }),
    transactions: new prom.Counter({ name: `${prefix}transactions_total`, help: 'Transactions by outcome (retry counts each rerun)', labelNames: ['pool', 'outcome'], registers }),
    created: new prom.Counter({ name: `${prefix}connections_created_total`, help: 'Connections opened', labelNames: ['pool'], registers }),
    closed: new prom.Counter({ name: `${prefix}connections_closed_total`, help: 'Connections closed by reason', labelNames: ['pool', 'reason'], registers }),
    leaks: new prom.Counter({ name: `${prefix}leaks_detected_total`, help: 'Leases held past leakDetectionMs', labelNames: ['pool'], registers }),
    recoveries: new prom.Counter({ name: `${prefix}recoveries_total`, help: 'Recoveries performed by the pool, by kind', labelNames: ['pool', 'kind'], registers }),
  };
}

/** Validate and build the prom-client sink for one pool. Throws `ConfigError` for a duplicate pool name. */
export function createPromMetrics(options: MetricsOptions, source: GaugeSource): MetricsSink {
  const prefix = options.prefix ?? 'leasepool_';
  const buckets = options.buckets ?? DEFAULT_BUCKETS;
  const problems: { field: string; problem: string }[] = [];
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) problems.push({ field: 'metrics.prefix', problem: 'must be a valid Prometheus metric name prefix' });
  if (!Array.isArray(buckets) || buckets.length === 0 || buckets.some((b, i) => !(typeof b === 'number' && b > 0 && (i === 0 || b > (buckets[i - 1] as number))))) {
    problems.push({ field: 'metrics.buckets', problem: 'must be a non-empty increasing list of positive seconds' });
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const set = metricSetFor(setsByRegistry, options.registry, prefix, () => createMetricSet(loadPromClient(), options.registry, prefix, buckets));
  if (set.sources.has(source.name)) {
    throw new ConfigError([{ field: 'name', problem: `"${source.name}" is already used by an open pool on this metrics registry` }]);
  }
  set.sources.set(source.name, source);

  const pool = source.name;
  const m = set;
  const leaseDuration = m.leaseDuration.labels({ pool });
  const acquireWait = m.acquireWait.labels({ pool });
  const acquiresSuccess = m.acquires.labels({ pool, outcome: 'success' });
  const created = m.created.labels({ pool });
  // Touch every series once so dashboards show zeros rather than "no data".
  for (const outcome of ['success', 'timeout', 'aborted', 'rejected', 'error']) m.acquires.labels({ pool, outcome }).inc(0);
  for (const outcome of ['commit', 'rollback', 'retry', 'unknown']) m.transactions.labels({ pool, outcome }).inc(0);
  for (const reason of CLOSE_REASONS) m.closed.labels({ pool, reason }).inc(0);
  for (const kind of RECOVERY_KINDS) m.recoveries.labels({ pool, kind }).inc(0);
  m.leaks.labels({ pool }).inc(0);
  created.inc(0);

  return {
    acquired(waitSeconds) {
      acquiresSuccess.inc();
      acquireWait.observe(waitSeconds);
    },
    acquireFailed(outcome) {
      m.acquires.labels({ pool, outcome }).inc();
    },
    released(leaseSeconds) {
      leaseDuration.observe(leaseSeconds);
    },
    transaction(outcome, durationSeconds) {
      m.transactions.labels({ pool, outcome }).inc();
      if (durationSeconds !== undefined) m.txDuration.labels({ pool, outcome }).observe(durationSeconds);
    },
    connectionCreated() {
      created.inc();
    },
    connectionClosed(reason) {
      m.closed.labels({ pool, reason }).inc();
    },
    leakDetected() {
      m.leaks.labels({ pool }).inc();
    },
    recovery(kind) {
      m.recoveries.labels({ pool, kind }).inc();
    },
    detach() {
      if (m.sources.get(pool) === source) m.sources.delete(pool);
    },
  };
}

/** Both sinks (Prometheus and OpenTelemetry); either alone when the other is off. */
export function combineSinks(first: MetricsSink, second: MetricsSink | undefined): MetricsSink {
  if (second === undefined) return first;
  if (first === NOOP_METRICS) return second;
  return {
    acquired: (s) => (first.acquired(s), second.acquired(s)),
    acquireFailed: (o) => (first.acquireFailed(o), second.acquireFailed(o)),
    released: (s) => (first.released(s), second.released(s)),
    transaction: (o, s) => (first.transaction(o, s), second.transaction(o, s)),
    connectionCreated: (s) => (first.connectionCreated(s), second.connectionCreated(s)),
    connectionClosed: (r) => (first.connectionClosed(r), second.connectionClosed(r)),
    leakDetected: () => (first.leakDetected(), second.leakDetected()),
    recovery: (k) => (first.recovery(k), second.recovery(k)),
    detach: () => (first.detach(), second.detach()),
  };
}
