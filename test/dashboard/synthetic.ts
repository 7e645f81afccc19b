/**
 * Synthetic leasepool series, made with prom-client directly from the design table: lets you look
 * at the dashboard and the alert expressions without the core (`scripts/prometheus-check.ts
 * --synthetic`). The jest test does NOT use this: it scrapes a real pool (workload.ts).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { DESIGN_METRICS } from './model';

export interface SyntheticSource {
  readonly registry: Registry;
  readonly pools: readonly string[];
  stop(): void;
}

export function startSynthetic(pools: readonly string[] = ['main', 'reports']): SyntheticSource {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const labels = (name: string): string[] => ['pool', ...Object.keys(DESIGN_METRICS[name]?.labels ?? {})];
  const values = (name: string, label: string): readonly string[] => DESIGN_METRICS[name]?.labels[label] ?? [];
  const registers = [registry];
  const max = 10;
  const state = new Map(pools.map((p) => [p, { active: 0, idle: 0, pending: 0, oldest: 0 }]));

  const gauge = (name: string, pick: (p: string, s: { active: number; idle: number; pending: number; oldest: number }) => Array<[Record<string, string>, number]>): void => {
    new Gauge({
      name,
      help: name,
      labelNames: labels(name),
      registers,
      collect() {
        for (const [pool, s] of state) for (const [l, v] of pick(pool, s)) this.set({ pool, ...l }, v);
      },
    });
  };
  gauge('leasepool_connections', (_p, s) => [
    [{ state: 'active' }, s.active],
    [{ state: 'idle' }, s.idle],
    [{ state: 'pending_create' }, 0],
  ]);
  gauge('leasepool_connections_max', () => [[{}, max]]);
  gauge('leasepool_acquires_pending', (_p, s) => [[{}, s.pending]]);
  gauge('leasepool_lease_oldest_seconds', (_p, s) => [[{}, s.oldest]]);

  const hist = (name: string): Histogram<string> => new Histogram({ name, help: name, labelNames: labels(name), registers, buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 1, 5] });
  const counter = (name: string): Counter<string> => new Counter({ name, help: name, labelNames: labels(name), registers });
  const leaseDuration = hist('leasepool_lease_duration_seconds');
  const acquireWait = hist('leasepool_acquire_wait_seconds');
  const txDuration = hist('leasepool_transaction_duration_seconds');
  const acquires = counter('leasepool_acquires_total');
  const txs = counter('leasepool_transactions_total');
  const created = counter('leasepool_connections_created_total');
  const closed = counter('leasepool_connections_closed_total');
  const leaks = counter('leasepool_leaks_detected_total');
  const recoveries = counter('leasepool_recoveries_total');
  for (const pool of pools) {
    for (const outcome of values('leasepool_acquires_total', 'outcome')) acquires.labels({ pool, outcome }).inc(0);
    for (const outcome of values('leasepool_transactions_total', 'outcome')) txs.labels({ pool, outcome }).inc(0);
    for (const reason of values('leasepool_connections_closed_total', 'reason')) closed.labels({ pool, reason }).inc(0);
    for (const kind of values('leasepool_recoveries_total', 'kind')) recoveries.labels({ pool, kind }).inc(0);
    leaks.labels({ pool }).inc(0);
    created.labels({ pool }).inc(0);
  }

  const pickOne = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;
  let tick = 0;
  const timer = setInterval(() => {
    tick += 1;
    for (const [pool, s] of state) {
      s.active = Math.min(max, Math.round(5 + 5 * Math.sin(tick / 20) + Math.random() * 2));
      s.idle = max - s.active;
      s.pending = s.active >= max ? Math.floor(Math.random() * 5) : 0;
      s.oldest = (tick % 50) / 5;
      for (let i = 0; i < 20; i++) {
        acquireWait.labels({ pool }).observe(Math.random() * (s.pending > 0 ? 0.3 : 0.01));
        leaseDuration.labels({ pool }).observe(Math.random() * 0.2);
        acquires.labels({ pool, outcome: Math.random() < 0.97 ? 'success' : pickOne(['timeout', 'aborted', 'rejected', 'error']) }).inc();
        const outcome = Math.random() < 0.9 ? 'commit' : pickOne(['rollback', 'retry', 'unknown']);
        txs.labels({ pool, outcome }).inc();
        txDuration.labels({ pool, outcome }).observe(Math.random() * 0.1);
      }
      if (tick % 7 === 0) {
        created.labels({ pool }).inc();
        closed.labels({ pool, reason: pickOne(values('leasepool_connections_closed_total', 'reason')) }).inc();
      }
      if (tick % 13 === 0) leaks.labels({ pool }).inc();
      if (tick % 5 === 0) recoveries.labels({ pool, kind: pickOne(values('leasepool_recoveries_total', 'kind')) }).inc();
    }
  }, 100);
  timer.unref();
  return { registry, pools, stop: () => clearInterval(timer) };
}
