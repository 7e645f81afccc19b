/**
 * The Grafana dashboard and the Prometheus alert rules, checked three ways:
 * (a) promtool: the rules file is valid and each alert fires (and stays quiet) as intended;
 * (b) the dashboard JSON is importable and every query uses only the design's metrics, filtered by
 *     the pool and instance variables, with rates over $__rate_interval;
 * (c) a real Prometheus scrapes a real pool under load, and every panel query and every alert
 *     expression is evaluated by it: each parses, and each panel shows data.
 * Needs `prometheus` and `promtool` on PATH: scripts/ensure-tools.sh installs them.
 */
import { checkPanels, checkRules, explain, showsData, waitForPanels, type QueryCheck, type RuleCheck } from './check';
import {
  ALERTS_FILE,
  ALERTS_TEST_FILE,
  ALLOWED_SERIES,
  CLUSTER_METRICS,
  DESIGN_METRICS,
  NODE_METRICS,
  dataPanels,
  loadDashboard,
  panelQueries,
  regexLiteral,
  selectorsIn,
  seriesNamesOf,
  type GrafanaDashboard,
  type Substitution,
} from './model';
import { promtool, startPrometheus, type PrometheusServer } from './prometheus';
import { startWorkload, type Workload } from './workload';

const RATE_INTERVAL = '15s';

describe('alert rules (promtool)', () => {
  test('promtool check rules grafana/alerts.yml', () => {
    const r = promtool(['check', 'rules', ALERTS_FILE]);
    expect(r.output).toContain('SUCCESS: 7 rules found');
    expect(r.status).toBe(0);
  });

  test('promtool test rules: each alert fires when it should, with its rendered annotations, and not otherwise', () => {
    const r = promtool(['test', 'rules', ALERTS_TEST_FILE]);
    if (r.status !== 0) throw new Error(`promtool test rules failed:\n${r.output}`);
    expect(r.output).toContain('SUCCESS');
  });
});

describe('dashboard JSON (grafana/leasepool.json)', () => {
  const dash: GrafanaDashboard = loadDashboard();
  const DS_VAR = { type: 'prometheus', uid: '${datasource}' };

  test('is an importable dashboard: schemaVersion, uid, __inputs DS_PROMETHEUS, __requires', () => {
    expect(dash.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dash.uid).toBe('leasepool');
    expect(dash.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
    expect(dash.__requires).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'grafana', id: 'grafana' }),
        expect.objectContaining({ type: 'datasource', id: 'prometheus' }),
        expect.objectContaining({ type: 'panel', id: 'timeseries' }),
      ]),
    );
    // Every panel type used is declared in __requires.
    const required = new Set((dash.__requires ?? []).filter((r) => r.type === 'panel').map((r) => r.id));
    for (const p of dataPanels(dash)) expect(required).toContain(p.type);
  });

  test('template variables: datasource (prometheus), pool and instance (multi, All = .*)', () => {
    const vars = new Map(dash.templating.list.map((v) => [v.name, v]));
    expect([...vars.keys()]).toEqual(['datasource', 'pool', 'instance']);
    expect(vars.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus', current: { value: '${DS_PROMETHEUS}' } });
    const queryOf = (name: string): unknown => {
      const q = vars.get(name)?.query;
      return typeof q === 'string' ? q : (q as { query?: unknown } | undefined)?.query;
    };
    for (const [name, query] of [
      ['pool', 'label_values(leasepool_connections_max, pool)'],
      ['instance', 'label_values(leasepool_connections_max{pool=~"$pool"}, instance)'],
    ] as const) {
      expect(vars.get(name)).toMatchObject({ type: 'query', multi: true, includeAll: true, allValue: '.*', datasource: DS_VAR, definition: query });
      expect(queryOf(name)).toBe(query);
    }
  });

  test('every data panel has a title, a unit, a description and targets with an expr', () => {
    const problems: string[] = [];
    const units = new Set(['s', 'percentunit', 'short', 'ops']);
    for (const p of dataPanels(dash)) {
      const name = p.title ?? `panel ${String(p.id)}`;
      if (!p.title) problems.push(`${name}: no title`);
      if (!p.description || p.description.length < 80) problems.push(`${name}: description missing or too short to guide an operator`);
      const unit = p.fieldConfig?.defaults?.unit;
      if (unit === undefined || !units.has(unit)) problems.push(`${name}: unit ${String(unit)} is not one of ${[...units].join(', ')}`);
      if (!p.targets || p.targets.length === 0) problems.push(`${name}: no targets`);
      const refIds = new Set<string>();
      for (const t of p.targets ?? []) {
        if (!t.expr || t.expr.trim() === '') problems.push(`${name} [${t.refId ?? '?'}]: empty expr`);
        if (!t.refId || refIds.has(t.refId)) problems.push(`${name}: missing or duplicate refId ${String(t.refId)}`);
        refIds.add(t.refId ?? '');
        if (!t.legendFormat) problems.push(`${name} [${t.refId ?? '?'}]: no legendFormat`);
      }
    }
    expect(problems).toEqual([]);
  });

  test('every datasource reference is the ${datasource} variable (no hard-coded uid)', () => {
    const found: string[] = [];
    const walk = (node: unknown, where: string): void => {
      if (Array.isArray(node)) node.forEach((n, i) => walk(n, `${where}[${i}]`));
      else if (node !== null && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          if (k === 'datasource') found.push(`${where}.datasource=${JSON.stringify(v)}`);
          else walk(v, `${where}.${k}`);
        }
      }
    };
    walk(dash.panels, 'panels');
    walk(dash.templating.list.filter((v) => v.type !== 'datasource'), 'templating');
    expect(found.length).toBeGreaterThan(0);
    const bad = found.filter((f) => !f.endsWith(`=${JSON.stringify(DS_VAR)}`));
    expect(bad).toEqual([]);
    // Each panel and each of its targets names the datasource.
    for (const p of dataPanels(dash)) {
      expect(p.datasource).toEqual(DS_VAR);
      for (const t of p.targets ?? []) expect(t.datasource).toEqual(DS_VAR);
    }
  });

  test('every expression uses only design-table metrics (or nodejs_*), filtered by $pool and $instance', () => {
    const problems: string[] = [];
    for (const q of panelQueries(dash)) {
      const selectors = selectorsIn(q.expr);
      if (selectors.length === 0) problems.push(`${q.label}: references no metric`);
      for (const s of selectors) {
        if (!ALLOWED_SERIES.has(s.name)) problems.push(`${q.label}: ${s.name} is not in the design's Metrics table`);
        const m = s.matchers ?? '';
        if (!/instance=~"\$instance"/.test(m)) problems.push(`${q.label}: ${s.name} is not filtered by instance=~"$instance"`);
        if (s.name.startsWith('leasepool_') && !/pool=~"\$pool"/.test(m)) problems.push(`${q.label}: ${s.name} is not filtered by pool=~"$pool"`);
      }
      // nodejs_* series carry no pool label: they must be narrowed to the instances serving $pool.
      if (selectors.some((s) => s.name.startsWith('nodejs_')) && !selectors.some((s) => s.name.startsWith('leasepool_') && /pool=~"\$pool"/.test(s.matchers ?? ''))) {
        problems.push(`${q.label}: nodejs_* series are not restricted to the instances of $pool`);
      }
    }
    expect(problems).toEqual([]);
  });

  test('counters and histograms are read with rate()/increase() over $__rate_interval, never since start', () => {
    const problems: string[] = [];
    const cumulative = new Set(
      Object.entries({ ...DESIGN_METRICS, ...CLUSTER_METRICS })
        .filter(([, d]) => d.type !== 'gauge')
        .flatMap(([name]) => seriesNamesOf(name)),
    );
    for (const q of panelQueries(dash)) {
      const re = /\b((?:leasepool)_[a-zA-Z0-9_]*)\s*(\{[^}]*\})?\s*(\[[^\]]*\])?/g;
      for (let m = re.exec(q.expr); m !== null; m = re.exec(q.expr)) {
        const name = m[1] as string;
        if (!cumulative.has(name)) continue;
        if (m[3] !== '[$__rate_interval]') problems.push(`${q.label}: ${name} is not read over [$__rate_interval]`);
        const before = q.expr.slice(0, m.index);
        if (!/\b(rate|increase)\(\s*$/.test(before)) problems.push(`${q.label}: ${name} is not inside rate() or increase()`);
      }
      if (/histogram_quantile/.test(q.expr) && !/sum by \([^)]*\ble\b[^)]*\)/.test(q.expr)) {
        problems.push(`${q.label}: histogram_quantile must aggregate with "sum by (le, ...)"`);
      }
    }
    expect(problems).toEqual([]);
  });

  test('shows every metric of the design table, and the Node.js event-loop lag with a note on collectDefaultMetrics', () => {
    const used = new Set(panelQueries(dash).flatMap((q) => selectorsIn(q.expr).map((s) => s.name)));
    const missing = [...Object.keys(DESIGN_METRICS), ...Object.keys(CLUSTER_METRICS)].filter((m) => !seriesNamesOf(m).some((s) => used.has(s)));
    expect(missing).toEqual([]);
    for (const n of NODE_METRICS) expect(used).toContain(n);
    const lag = dataPanels(dash).find((p) => (p.targets ?? []).some((t) => (t.expr ?? '').includes('nodejs_eventloop_lag_p99_seconds')));
    expect(lag?.description).toContain('collectDefaultMetrics');
  });

  test('panels have unique ids and do not overlap on the 24-column grid', () => {
    const ids = dash.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Map<string, string>();
    const overlaps: string[] = [];
    for (const p of dash.panels) {
      const g = p.gridPos;
      if (g === undefined) {
        overlaps.push(`${p.title ?? ''}: no gridPos`);
        continue;
      }
      if (g.x < 0 || g.w < 1 || g.x + g.w > 24) overlaps.push(`${p.title ?? ''}: outside the 24 columns`);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          const prev = cells.get(`${x},${y}`);
          if (prev !== undefined) overlaps.push(`${p.title ?? ''} overlaps ${prev}`);
          cells.set(`${x},${y}`, p.title ?? '');
        }
      }
    }
    expect([...new Set(overlaps)]).toEqual([]);
  });
});

describe('a real Prometheus scraping a real pool', () => {
  const dash = loadDashboard();
  let workload: Workload | undefined;
  let prom: PrometheusServer | undefined;
  let subs: Substitution[] = [];
  let panelResults: QueryCheck[][] = [];

  beforeAll(async () => {
    workload = await startWorkload();
    prom = await startPrometheus({ targets: [workload.target], ruleFiles: [ALERTS_FILE], intervalSeconds: 1 });
    subs = [
      { pool: '.*', instance: '.*', rateInterval: RATE_INTERVAL }, // Grafana's "All"
      { pool: regexLiteral(workload.poolName), instance: regexLiteral(workload.target), rateInterval: RATE_INTERVAL },
    ];
    // As soon as every panel shows data (a few scrapes), not a fixed sleep; 60 s at most.
    panelResults = await waitForPanels(prom, dash, subs, 60_000);
  }, 120_000);

  afterAll(async () => {
    // Stop Prometheus first and whatever happens; then the workload and its pool.
    try {
      await prom?.stop();
    } finally {
      await workload?.stop();
    }
  }, 30_000);

  const server = (): PrometheusServer => {
    if (prom === undefined) throw new Error('Prometheus did not start');
    return prom;
  };

  test('Prometheus scrapes the workload target', async () => {
    const targets = await server().targets();
    expect(targets.map((t) => t.labels['instance'])).toEqual([workload?.target]);
    // Scrapes succeeded (one slow scrape on a busy machine is not a failure: panels were checked above).
    const up = await server().query(`max_over_time(up{instance="${workload?.target ?? ''}"}[1m])`);
    expect([up, targets[0]?.lastError]).toMatchObject([{ status: 'success', data: { result: [{ value: [expect.any(Number), '1'] }] } }, expect.any(String)]);
  });

  test.each([
    ['All pools, all instances', 0],
    ['the workload pool and instance', 1],
  ])('every panel query parses and shows data (%s)', (_name, i) => {
    const results = panelResults[i] ?? [];
    expect(results.length).toBe(panelQueries(dash).length);
    const failing = results.filter((c) => !showsData(c)).map(explain);
    expect(failing).toEqual([]);
  });

  test('a pool that does not exist shows no data (the $pool filter is applied)', async () => {
    const results = await checkPanels(server(), dash, { pool: 'no_such_pool', instance: '.*', rateInterval: RATE_INTERVAL });
    expect(results.filter((c) => !c.ok).map(explain)).toEqual([]);
    expect(results.filter((c) => c.series > 0).map(explain)).toEqual([]);
  });

  test('every series of the pool carries the pool label', async () => {
    const r = await server().query('count by (__name__) ({__name__=~"leasepool_.+", pool=""})');
    expect(r).toMatchObject({ status: 'success', data: { result: [] } });
    const named = await server().query('count by (__name__) ({__name__=~"leasepool_.+"})');
    expect(named.status).toBe('success');
  });

  test('every alert rule is loaded, evaluates without error, and has severity, summary and description', async () => {
    const rules: RuleCheck[] = await checkRules(server());
    expect(rules.map((r) => r.rule.name).sort()).toEqual(
      [
        'LeasepoolAcquireTimeouts',
        'LeasepoolAcquireWaitHigh',
        'LeasepoolBrokenConnections',
        'LeasepoolCallersWaiting',
        'LeasepoolLeakDetected',
        'LeasepoolLeaseReclaimed',
        'LeasepoolSaturated',
      ].sort(),
    );
    const problems: string[] = [];
    for (const r of rules) {
      if (!r.ok) problems.push(explain(r));
      if (r.rule.health === 'err') problems.push(`${r.rule.name}: rule health err: ${r.rule.lastError ?? ''}`);
      for (const s of selectorsIn(r.rule.query)) if (!ALLOWED_SERIES.has(s.name)) problems.push(`${r.rule.name}: ${s.name} is not a design metric`);
      if (!['warning', 'critical'].includes(r.rule.labels?.['severity'] ?? '')) problems.push(`${r.rule.name}: severity label missing`);
      for (const key of ['summary', 'description']) {
        const text = r.rule.annotations?.[key] ?? '';
        if (!text.includes('{{ $labels.pool }}') || !text.includes('{{ $labels.instance }}')) {
          problems.push(`${r.rule.name}: ${key} does not name {{ $labels.pool }} and {{ $labels.instance }}`);
        }
      }
      if (!(r.rule.annotations?.['description'] ?? '').includes('{{ $value')) problems.push(`${r.rule.name}: description does not show {{ $value }}`);
    }
    expect(problems).toEqual([]);
  });

  test('the alerts the workload provokes fire in Prometheus: leak, reclaimed lease, acquire timeouts', async () => {
    // These have no `for`: Prometheus fires them at the first evaluation where the expression holds.
    const wanted = ['LeasepoolLeakDetected', 'LeasepoolLeaseReclaimed', 'LeasepoolAcquireTimeouts'];
    const until = Date.now() + 20_000;
    let rules: RuleCheck[] = await checkRules(server());
    const firing = (): string[] =>
      rules.filter((r) => wanted.includes(r.rule.name) && (r.rule.alerts ?? []).some((a) => a.state === 'firing' && a.labels['pool'] === workload?.poolName)).map((r) => r.rule.name);
    while (firing().length < wanted.length && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 1_000)); // one evaluation interval
      rules = await checkRules(server());
    }
    expect(firing().sort()).toEqual([...wanted].sort());
    const reclaimed = rules.find((r) => r.rule.name === 'LeasepoolLeaseReclaimed');
    const kinds = (reclaimed?.rule.alerts ?? []).map((a) => a.labels['kind']);
    expect(kinds).toContain('leak_reclaimed');
    // The workload's withLease deadlines are counted (kind deadline) but never fire the leak alert.
    const recoveries = await (workload as Workload).registry.getSingleMetric('leasepool_recoveries_total')?.get();
    const deadlines = recoveries?.values.find((v) => v.labels['pool'] === workload?.poolName && v.labels['kind'] === 'deadline')?.value ?? 0;
    expect(deadlines).toBeGreaterThan(0);
    expect(kinds).not.toContain('deadline');
  }, 40_000);

  test('the pool exposes every metric of the design table, with its type and label values', async () => {
    const exposed = await (workload as Workload).registry.getMetricsAsJSON();
    const problems: string[] = [];
    for (const [name, def] of Object.entries(DESIGN_METRICS)) {
      const m = exposed.find((e) => e.name === name);
      if (m === undefined) {
        problems.push(`${name}: not exposed`);
        continue;
      }
      if (String(m.type) !== def.type) problems.push(`${name}: type ${String(m.type)}, design says ${def.type}`);
      for (const v of m.values) {
        const labels = v.labels as Record<string, string | number | undefined>;
        if (labels['pool'] !== (workload as Workload).poolName) problems.push(`${name}: series without pool="${(workload as Workload).poolName}"`);
        for (const [label, value] of Object.entries(labels)) {
          if (label === 'pool' || label === 'le') continue;
          const allowed = def.labels[label];
          if (allowed === undefined) problems.push(`${name}: unexpected label ${label}`);
          else if (!allowed.includes(String(value))) problems.push(`${name}: ${label}="${String(value)}" is not a design value`);
        }
      }
    }
    expect([...new Set(problems)]).toEqual([]);
  });

  test('the cluster series (per host: pool is the host pool) are exposed with their labels', async () => {
    const exposed = await (workload as Workload).registry.getMetricsAsJSON();
    const problems: string[] = [];
    for (const [name, def] of Object.entries(CLUSTER_METRICS)) {
      const metric = exposed.find((m) => m.name === name);
      if (metric === undefined) {
        problems.push(`${name}: not exposed`);
        continue;
      }
      if (String(metric.type) !== def.type) problems.push(`${name}: type ${metric.type}, expected ${def.type}`);
      for (const v of metric.values) {
        const labels = v.labels as Record<string, string>;
        if (labels['pool'] !== (workload as Workload).poolName) problems.push(`${name}: series without pool="${(workload as Workload).poolName}"`);
        if (labels['host'] !== 'primary' || labels['cluster'] === undefined) problems.push(`${name}: host / cluster labels missing`);
        for (const [label, values] of Object.entries(def.labels)) if (!values.includes(labels[label] ?? '')) problems.push(`${name}: ${label}=${String(labels[label])}`);
      }
    }
    expect(problems).toEqual([]);
  });

  test('the workload went through every path it provokes, and nothing else failed', () => {
    const w = workload as Workload;
    expect(w.unexpected).toEqual([]);
    for (const code of ['ACQUIRE_TIMEOUT', 'LEASE_REVOKED', 'LEASE_TIMEOUT', 'ROLLBACK', 'FATAL']) {
      expect([code, (w.provoked.get(code) ?? 0) > 0]).toEqual([code, true]);
    }
    expect(w.warnings.length).toBeGreaterThan(0); // leak reports went to the pool's logger
  });
});
