/**
 * What the dashboard tests know about the metrics and the dashboard file: the design table of
 * metrics, the panel queries of grafana/leasepool.json, and Grafana's variable substitution.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './prometheus';

export const DASHBOARD_FILE = path.join(REPO_ROOT, 'grafana', 'leasepool.json');
export const ALERTS_FILE = path.join(REPO_ROOT, 'grafana', 'alerts.yml');
export const ALERTS_TEST_FILE = path.join(REPO_ROOT, 'test', 'dashboard', 'alerts.rules-test.yml');

export type MetricType = 'counter' | 'gauge' | 'histogram';

/**
 * The "Metrics" table of ARCHITECTURE.md (names fixed). Labels besides `pool`, with their values.
 * Keep in step with the design; the real-scrape test checks the core exposes exactly these.
 */
export const DESIGN_METRICS: Readonly<Record<string, { type: MetricType; labels: Readonly<Record<string, readonly string[]>> }>> = {
  leasepool_lease_duration_seconds: { type: 'histogram', labels: {} },
  leasepool_acquire_wait_seconds: { type: 'histogram', labels: {} },
  leasepool_transaction_duration_seconds: { type: 'histogram', labels: { outcome: ['commit', 'rollback', 'retry', 'unknown'] } },
  leasepool_connections: { type: 'gauge', labels: { state: ['idle', 'active', 'pending_create'] } },
  leasepool_connections_max: { type: 'gauge', labels: {} },
  leasepool_acquires_pending: { type: 'gauge', labels: {} },
  leasepool_lease_oldest_seconds: { type: 'gauge', labels: {} },
  leasepool_acquires_total: { type: 'counter', labels: { outcome: ['success', 'timeout', 'aborted', 'rejected', 'error'] } },
  leasepool_transactions_total: { type: 'counter', labels: { outcome: ['commit', 'rollback', 'retry', 'unknown'] } },
  leasepool_connections_created_total: { type: 'counter', labels: {} },
  leasepool_connections_closed_total: {
    type: 'counter',
    labels: { reason: ['idle', 'lifetime', 'max_uses', 'broken', 'validation', 'reset', 'reclaimed', 'shutdown'] },
  },
  leasepool_leaks_detected_total: { type: 'counter', labels: {} },
  leasepool_recoveries_total: {
    type: 'counter',
    labels: { kind: ['rollback_on_release', 'broken_connection', 'deadline', 'leak_reclaimed', 'gc_reclaimed', 'shutdown_reclaimed', 'cleanup_error'] },
  },
};

/** The series of a cluster (createCluster, docs/cluster.md): `pool` is the host's pool. Labels besides `pool`. */
export const CLUSTER_METRICS: Readonly<Record<string, { type: MetricType; labels: Readonly<Record<string, readonly string[]>> }>> = {
  leasepool_cluster_host_up: { type: 'gauge', labels: { role: ['primary', 'standby', 'unknown'] } },
  leasepool_cluster_replica_lag_seconds: { type: 'gauge', labels: {} },
  leasepool_cluster_reads_total: { type: 'counter', labels: { reason: ['target', 'no_replica', 'read_your_writes'] } },
  leasepool_cluster_primary_changes_total: { type: 'counter', labels: {} },
};

/** prom-client default metrics the dashboard may use (needs `collectDefaultMetrics`). */
export const NODE_METRICS: readonly string[] = ['nodejs_eventloop_lag_p99_seconds'];

/** Series names a PromQL expression may use for a design metric (histograms expose three). */
export function seriesNamesOf(metric: string): string[] {
  const def = DESIGN_METRICS[metric] ?? CLUSTER_METRICS[metric];
  if (def === undefined) return [];
  return def.type === 'histogram' ? [`${metric}_bucket`, `${metric}_sum`, `${metric}_count`] : [metric];
}

/** Every series name a dashboard or alert expression may reference. */
export const ALLOWED_SERIES: ReadonlySet<string> = new Set([...Object.keys(DESIGN_METRICS).flatMap(seriesNamesOf), ...Object.keys(CLUSTER_METRICS), ...NODE_METRICS]);

/** The metric selectors of an expression: `name{matchers}` (matchers text) or a bare name. */
export function selectorsIn(expr: string): Array<{ name: string; matchers: string | undefined }> {
  const out: Array<{ name: string; matchers: string | undefined }> = [];
  // Metric-like identifiers of our families; strings inside {...} never start with these prefixes
  // followed by `{`, and label values are quoted, so this is enough for our own expressions.
  const re = /\b((?:leasepool|nodejs)_[a-zA-Z0-9_]*)\b(\s*\{([^}]*)\})?/g;
  for (let m = re.exec(expr); m !== null; m = re.exec(expr)) {
    out.push({ name: m[1] as string, matchers: m[3] });
  }
  return out;
}

export interface GrafanaTarget {
  readonly refId?: string;
  readonly expr?: string;
  readonly legendFormat?: string;
  readonly datasource?: { type?: string; uid?: string };
}

export interface GrafanaPanel {
  readonly id?: number;
  readonly type?: string;
  readonly title?: string;
  readonly description?: string;
  readonly datasource?: { type?: string; uid?: string };
  readonly gridPos?: { h: number; w: number; x: number; y: number };
  readonly targets?: readonly GrafanaTarget[];
  readonly panels?: readonly GrafanaPanel[];
  readonly fieldConfig?: { defaults?: { unit?: string } };
}

export interface GrafanaVariable {
  readonly name: string;
  readonly type: string;
  readonly query?: unknown;
  readonly definition?: string;
  readonly datasource?: { type?: string; uid?: string };
  readonly multi?: boolean;
  readonly includeAll?: boolean;
  readonly allValue?: string;
  readonly current?: { value?: unknown };
}

export interface GrafanaDashboard {
  readonly __inputs?: ReadonlyArray<{ name: string; type: string; pluginId: string }>;
  readonly __requires?: ReadonlyArray<{ type: string; id: string }>;
  readonly schemaVersion?: number;
  readonly uid?: string;
  readonly title?: string;
  readonly panels: readonly GrafanaPanel[];
  readonly templating: { readonly list: readonly GrafanaVariable[] };
}

export function loadDashboard(): GrafanaDashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as GrafanaDashboard;
}

/** Panels that show data (rows flattened out; collapsed rows keep theirs in `panels`). */
export function dataPanels(dash: GrafanaDashboard): GrafanaPanel[] {
  return dash.panels.flatMap((p) => (p.type === 'row' ? [...(p.panels ?? [])] : [p]));
}

export interface PanelQuery {
  /** `Panel title [refId]`: what failure messages show. */
  readonly label: string;
  readonly panel: string;
  readonly refId: string;
  readonly expr: string;
}

export function panelQueries(dash: GrafanaDashboard): PanelQuery[] {
  return dataPanels(dash).flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      label: `${p.title ?? `panel ${String(p.id)}`} [${t.refId ?? '?'}]`,
      panel: p.title ?? '',
      refId: t.refId ?? '',
      expr: t.expr ?? '',
    })),
  );
}

export interface Substitution {
  /** Regex for `$pool` (Grafana's All value is `.*`). */
  readonly pool: string;
  /** Regex for `$instance`. */
  readonly instance: string;
  /** What Grafana's `$__rate_interval` would be, e.g. `15s`. */
  readonly rateInterval: string;
}

/** Replace dashboard variables the way Grafana does before sending a query. */
export function substitute(expr: string, s: Substitution): string {
  return expr
    .replace(/\$__rate_interval|\$\{__rate_interval\}/g, s.rateInterval)
    .replace(/\$\{pool(?::[a-z]+)?\}|\$pool\b/g, s.pool)
    .replace(/\$\{instance(?::[a-z]+)?\}|\$instance\b/g, s.instance);
}

/** Escape a literal for a PromQL regex matcher inside a double-quoted string (Grafana's `regex` format). */
export function regexLiteral(value: string): string {
  return value.replace(/[\\^$.|?*+()[\]{}]/g, (c) => `\\\\${c}`);
}
