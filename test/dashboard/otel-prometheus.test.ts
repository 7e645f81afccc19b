/**
 * The OpenTelemetry metrics as an OTel user ships them: the SDK's Prometheus exporter serving two
 * leasepool pools on a real PostgreSQL, scraped by a real Prometheus; one query per
 * `db.client.connection.*` metric, each pool's series apart.
 */
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { Client } from 'pg';
import { pgAdapter } from '../../adapters/pg';
import { createPool, type Lease, type Pool } from '../../src';
import { freePort, startPrometheus, type PrometheusServer } from './prometheus';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const A = 'otel_prom_a';
const B = 'otel_prom_b';

let exporter: PrometheusExporter;
let meterProvider: MeterProvider;
let prometheus: PrometheusServer;
let a: Pool<Client>;
let b: Pool<Client>;
let held: Lease<Client>[];
let waiting: Promise<Lease<Client>>;

beforeAll(async () => {
  const port = await freePort();
  exporter = new PrometheusExporter({ host: '127.0.0.1', port });
  meterProvider = new MeterProvider({ readers: [exporter] });
  const openTelemetry = { meterProvider, tracing: false };
  a = createPool(pgAdapter(PG_URL), { name: A, max: 2, min: 1, openTelemetry });
  b = createPool(pgAdapter(PG_URL), { name: B, max: 3, openTelemetry });
  for (let i = 0; i < 5; i++) await a.withLease((conn) => conn.query('SELECT 1'));
  await b.withLease((conn) => conn.query('SELECT 1'));
  // A: full, one caller waiting, one that timed out.
  held = [await a.acquire(), await a.acquire()];
  waiting = a.acquire();
  await a.acquire({ timeoutMs: 20 }).catch(() => undefined);
  prometheus = await startPrometheus({ targets: [`127.0.0.1:${port}`] });
}, 60_000);

afterAll(async () => {
  for (const lease of held) await lease.release();
  await (await waiting).release();
  await Promise.all([a.close(), b.close()]);
  await prometheus.stop();
  await meterProvider.shutdown();
});

/** The value of an instant query with one series; polls until Prometheus has scraped it. */
async function scalar(expr: string): Promise<number> {
  const until = Date.now() + 20_000;
  for (;;) {
    const r = await prometheus.query(expr);
    if (r.status === 'error') throw new Error(`${expr}: ${r.error}`);
    if (r.data.result.length === 1) return Number(r.data.result[0]?.value[1]);
    if (r.data.result.length > 1) throw new Error(`${expr}: ${r.data.result.length} series`);
    if (Date.now() > until) throw new Error(`${expr}: no series after 20 s\n${prometheus.log()}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const sel = (pool: string, extra = ''): string => `{db_client_connection_pool_name="${pool}",db_system_name="postgresql"${extra}}`;

test.each([
  ['db_client_connection_count', sel(A, ',db_client_connection_state="used"'), 2],
  ['db_client_connection_count', sel(A, ',db_client_connection_state="idle"'), 0],
  ['db_client_connection_count', sel(B, ',db_client_connection_state="idle"'), 1],
  ['db_client_connection_max', sel(A), 2],
  ['db_client_connection_max', sel(B), 3],
  ['db_client_connection_idle_max', sel(A), 2],
  ['db_client_connection_idle_min', sel(A), 1],
  ['db_client_connection_pending_requests', sel(A), 1],
  ['db_client_connection_timeouts_total', sel(A), 1],
  ['db_client_connection_timeouts_total', sel(B), 0],
  ['db_client_connection_wait_time_count', sel(A), 7],
  ['db_client_connection_use_time_count', sel(A), 5],
  ['db_client_connection_create_time_count', sel(A), 2],
  ['db_client_connection_wait_time_count', sel(B), 1],
])('%s%s = %d', async (name, selector, expected) => {
  expect(await scalar(`${name}${selector}`)).toBe(expected);
});

test('histograms are in seconds, with buckets', async () => {
  const mean = await scalar(`db_client_connection_create_time_sum${sel(A)} / db_client_connection_create_time_count${sel(A)}`);
  expect(mean).toBeGreaterThan(0);
  expect(mean).toBeLessThan(5);
  expect(await scalar(`db_client_connection_wait_time_bucket${sel(A, ',le="+Inf"')}`)).toBe(7);
});
