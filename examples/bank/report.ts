/** The status line and the final summary, from the workload's tally and the pool's own metrics. */
import type { Registry } from 'prom-client';
import type { PoolStats } from '../../src/index';
import { count } from './output';
import type { FaultKind, Tally } from './workload';

/** The pool's counters as Prometheus (and the Grafana dashboard) see them. */
export interface PoolCounters {
  readonly transactions: ReadonlyMap<string, number>;
  readonly recoveries: ReadonlyMap<string, number>;
  readonly closed: ReadonlyMap<string, number>;
  readonly acquires: ReadonlyMap<string, number>;
  readonly leaks: number;
  readonly created: number;
}

/** Read `leasepool_*` counters of pool `pool` from the registry, keyed by their second label. */
export async function readCounters(registry: Registry, pool: string): Promise<PoolCounters> {
  const byLabel = async (name: string, label: string): Promise<Map<string, number>> => {
    const out = new Map<string, number>();
    const metric = registry.getSingleMetric(name);
    if (metric === undefined) return out;
    for (const v of (await metric.get()).values) {
      if (v.labels['pool'] !== pool) continue;
      const key = String(v.labels[label] ?? '');
      out.set(key, (out.get(key) ?? 0) + v.value);
    }
    return out;
  };
  const single = async (name: string): Promise<number> => (await byLabel(name, 'pool')).get(pool) ?? 0;
  return {
    transactions: await byLabel('leasepool_transactions_total', 'outcome'),
    recoveries: await byLabel('leasepool_recoveries_total', 'kind'),
    closed: await byLabel('leasepool_connections_closed_total', 'reason'),
    acquires: await byLabel('leasepool_acquires_total', 'outcome'),
    leaks: await single('leasepool_leaks_detected_total'),
    created: await single('leasepool_connections_created_total'),
  };
}

const get = (m: ReadonlyMap<string, number>, key: string): number => m.get(key) ?? 0;

/** `  4.0 s | 512 transfers/s | committed 1 873 | rolled back 97 | retried 12 | leases active 1 idle 0 waiting 7 | leaks 1 | reclaimed 2 | deadlines 3` */
export function statusLine(elapsedS: number, perSecond: number, c: PoolCounters, stats: PoolStats): string {
  const reclaimed = get(c.recoveries, 'leak_reclaimed') + get(c.recoveries, 'gc_reclaimed');
  return [
    `${elapsedS.toFixed(1).padStart(5)} s`,
    `${count(Math.round(perSecond)).padStart(5)} transfers/s`,
    `committed ${count(get(c.transactions, 'commit'))}`,
    `rolled back ${count(get(c.transactions, 'rollback'))}`,
    `retried ${count(get(c.transactions, 'retry'))}`,
    `leases active ${stats.active} idle ${stats.idle} waiting ${stats.pending}`,
    `leaks ${count(c.leaks)}`,
    `reclaimed ${count(reclaimed)}`,
    `deadlines ${count(get(c.recoveries, 'deadline'))}`,
  ].join(' | ');
}

export interface SummaryInput {
  readonly dbLabel: string;
  readonly seconds: number;
  readonly workers: number;
  readonly accounts: number;
  readonly poolMax: number;
  readonly rates: Readonly<Record<FaultKind, number>>;
  readonly killSupported: boolean;
  readonly slowTimeoutMs: number;
  readonly leakDetectionMs: number;
  readonly leaseTimeoutMs: number;
  readonly tally: Tally;
  readonly counters: PoolCounters;
  readonly expectedTotal: bigint;
  readonly actualTotal: bigint | undefined;
  readonly totalError: string | undefined;
}

/** The summary: a two-column table, the leak reports with their stacks, the invariant line. */
export function summary(s: SummaryInput): string {
  const t = s.tally;
  const c = s.counters;
  const rows: Array<[string, string]> = [];
  const section = (title: string): void => {
    rows.push(['', ''], [title, '']);
  };
  const row = (label: string, value: string): void => {
    rows.push([`  ${label}`, value]);
  };
  const pct = (r: number): string => `${+(r * 100).toFixed(2)}%`;
  const fault = (kind: FaultKind, label: string, outcome: string): void => {
    const rate = s.rates[kind];
    row(label, rate <= 0 ? 'off' : `${count(t.injected[kind])} injected (rate ${pct(rate)}) → ${outcome}`);
  };

  rows.push(['database', s.dbLabel]);
  rows.push(['run', `${s.seconds.toFixed(1)} s, ${s.workers} workers, ${count(s.accounts)} accounts, pool max ${s.poolMax}`]);

  section('transfers');
  row('committed', `${count(t.committed)} (${count(Math.round(t.committed / Math.max(s.seconds, 0.001)))}/s)`);
  row('declined (insufficient funds)', count(t.declined));
  row('gave up after retries', count(t.retriesExhausted));
  row('acquire timeouts', count(t.acquireTimeouts));
  row('unexpected errors', count(t.unexpected));

  section('transactions (pool metrics)');
  for (const outcome of ['commit', 'rollback', 'retry', 'unknown']) row(outcome, count(get(c.transactions, outcome)));

  section('faults injected');
  fault('throw', 'throw after the debit', `${count(t.throwRolledBack)} rolled back`);
  fault(
    'leak',
    'leaked lease',
    `${count(t.leaksReported)} reported by the leak detector (after ${s.leakDetectionMs} ms), ${count(t.leaksReclaimed)} reclaimed and rolled back (after ${s.leaseTimeoutMs} ms or by the GC)`,
  );
  fault(
    'slow',
    'slow transaction',
    `${count(t.slowCancelled)} cancelled and rolled back at their ${s.slowTimeoutMs} ms deadline${t.slowCommitted > 0 ? `, ${count(t.slowCommitted)} committed` : ''}`,
  );
  if (s.killSupported) {
    fault(
      'kill',
      'killed backend',
      `${count(t.killFailed)} transfers failed and rolled back, connections replaced${t.killCommitted > 0 ? `, ${count(t.killCommitted)} committed before the kill landed` : ''}`,
    );
  } else {
    row('killed backend', 'n/a (PGlite has no backend to kill; use --db pg or --db mysql)');
  }

  section('leases and connections (pool metrics)');
  row('leaks detected', count(c.leaks));
  for (const kind of ['deadline', 'leak_reclaimed', 'gc_reclaimed', 'rollback_on_release', 'broken_connection', 'shutdown_reclaimed']) {
    row(`recoveries ${kind}`, count(get(c.recoveries, kind)));
  }
  row('connections created', count(c.created));
  const closed = [...c.closed].filter(([, n]) => n > 0).map(([reason, n]) => `${reason} ${count(n)}`);
  row('connections closed', closed.length === 0 ? '0' : closed.join(', '));
  row('acquires', ['success', 'timeout', 'error', 'rejected'].map((o) => `${o} ${count(get(c.acquires, o))}`).join(', '));

  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  const lines = ['── summary ' + '─'.repeat(50)];
  for (const [label, value] of rows) lines.push(value === '' ? label : `${label.padEnd(width)}${value}`);

  if (t.unexpectedSamples.length > 0) {
    lines.push('', 'unexpected errors (first ones):');
    for (const text of t.unexpectedSamples) lines.push(`  ${text}`);
  }

  lines.push('', `leak reports (${t.leakReports.length}):`);
  if (t.leakReports.length === 0) lines.push('  none');
  const shown = t.leakReports.slice(0, 3);
  for (const report of shown) {
    lines.push(`  lease #${report.id} held ${report.ageMs} ms${report.inTransaction ? ', inside a transaction' : ''}; acquired at:`);
    // Node's own frames (timers, task queues) say nothing about where the lease came from.
    const frames = (report.stack ?? '(stack not captured)').split('\n').filter((frame) => !frame.includes('node:internal'));
    for (const frame of frames) lines.push(`    ${frame.trim()}`);
  }
  if (t.leakReports.length > shown.length) lines.push(`  … and ${t.leakReports.length - shown.length} more`);

  lines.push('');
  if (s.actualTotal === undefined) {
    lines.push(`total balance: expected ${count(s.expectedTotal)}, could not be read (${s.totalError ?? 'unknown error'})`);
  } else {
    lines.push(`total balance: expected ${count(s.expectedTotal)}, found ${count(s.actualTotal)}`);
  }
  lines.push(`total balance unchanged: ${s.actualTotal === s.expectedTotal ? 'yes' : 'no'}`);
  return lines.join('\n');
}
