/**
 * Evaluate the dashboard's panel queries and the alert rules against a running Prometheus.
 * Used by dashboard.test.ts and by scripts/prometheus-check.ts.
 */
import { panelQueries, substitute, type GrafanaDashboard, type Substitution } from './model';
import type { PrometheusServer, PromRule } from './prometheus';

export interface QueryCheck {
  /** Panel title and refId, or alert name. */
  readonly label: string;
  /** The expression as sent. */
  readonly expr: string;
  /** Prometheus accepted and evaluated it. */
  readonly ok: boolean;
  readonly error: string | undefined;
  readonly series: number;
  /** Series whose value is a finite number (not NaN / ±Inf). */
  readonly finite: number;
}

async function evaluate(prom: PrometheusServer, label: string, expr: string): Promise<QueryCheck> {
  const r = await prom.query(expr);
  if (r.status !== 'success') return { label, expr, ok: false, error: `${r.errorType}: ${r.error}`, series: 0, finite: 0 };
  const result = r.data.result;
  const finite = result.filter((s) => Number.isFinite(Number(s.value[1]))).length;
  return { label, expr, ok: true, error: undefined, series: result.length, finite };
}

/** Every panel query with the variables substituted. */
export async function checkPanels(prom: PrometheusServer, dash: GrafanaDashboard, sub: Substitution): Promise<QueryCheck[]> {
  return Promise.all(panelQueries(dash).map((q) => evaluate(prom, q.label, substitute(q.expr, sub))));
}

/** A panel query "shows data" when it parses and returns at least one series with a finite value. */
export const showsData = (c: QueryCheck): boolean => c.ok && c.finite > 0;

export interface RuleCheck extends QueryCheck {
  readonly rule: PromRule;
}

/** Every loaded alerting rule: its health as Prometheus evaluates it, and its expression evaluated now. */
export async function checkRules(prom: PrometheusServer): Promise<RuleCheck[]> {
  const rules = await prom.rules();
  return Promise.all(rules.map(async (rule) => ({ ...(await evaluate(prom, rule.name, rule.query)), rule })));
}

/**
 * Poll until `done` holds for the panels (or the deadline passes): Prometheus needs a few
 * scrapes before a rate() over the window has two samples. Returns the last evaluation.
 */
export async function waitForPanels(
  prom: PrometheusServer,
  dash: GrafanaDashboard,
  subs: readonly Substitution[],
  deadlineMs: number,
  done: (checks: QueryCheck[]) => boolean = (checks) => checks.every(showsData),
): Promise<QueryCheck[][]> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const results = await Promise.all(subs.map((s) => checkPanels(prom, dash, s)));
    if (results.every(done) || Date.now() > until) return results;
    await new Promise((r) => setTimeout(r, 1_000)); // one scrape interval
  }
}

/** One line per check, for failure messages and the script's report. */
export function explain(c: QueryCheck): string {
  const state = !c.ok ? `ERROR ${c.error ?? ''}` : `${c.series} series, ${c.finite} finite`;
  return `${c.label}: ${state}\n    ${c.expr.replace(/\s+/g, ' ')}`;
}
