/**
 * Cluster mode recipe: every worker has its own pool and registry; the primary serves one
 * /metrics for all of them through prom-client's AggregatorRegistry. Counters and histograms
 * are summed across workers; `leasepool_lease_oldest_seconds` takes the max (its aggregator).
 *
 *   node --import tsx examples/cluster-metrics.ts        # then curl 127.0.0.1:9464/metrics
 *
 * The pool here uses the PostgreSQL adapter; any adapter works the same way.
 */
import cluster from 'node:cluster';
import { AggregatorRegistry, Registry } from 'prom-client';
import { createPool, serveMetrics } from '../src';
import { pgAdapter } from '../adapters/pg';

const WORKERS = 2;
const PORT = Number(process.env.METRICS_PORT ?? 9464);

if (cluster.isPrimary) {
  // The primary holds no pool: it asks every worker for its registry and merges them.
  const aggregator = new AggregatorRegistry();
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  void serveMetrics({
    registry: { metrics: () => aggregator.clusterMetrics(), contentType: aggregator.contentType },
    port: PORT,
  }).then((server) => console.log(`cluster metrics on ${server.url}`));
} else {
  // Each worker: its own registry, handed to the aggregator (construct one so the worker answers
  // the primary's requests), and the same pool name in every worker so the series merge.
  const registry = new Registry();
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  const pool = createPool(pgAdapter(process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'), {
    name: 'main',
    max: 5,
    metrics: { registry },
  });
  setInterval(() => void pool.withLease((conn) => conn.query('SELECT 1')).catch(() => undefined), 100);
}
