/**
 * Cluster mode: two `cluster` workers with one pool each, aggregated by prom-client's
 * AggregatorRegistry in the primary. Counters and histograms sum; the oldest-lease gauge takes
 * the max across workers (a sum would report an age no lease has).
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const FIXTURE = path.join(__dirname, 'fixtures', 'cluster-app.ts');

function sample(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.indexOf('}'));
    const got = Object.fromEntries(body.split(',').map((kv) => kv.split('=').map((s) => s.replace(/"/g, '')) as [string, string]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v) && Object.keys(got).length === Object.keys(labels).length) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  throw new Error(`no sample ${name}${JSON.stringify(labels)} in:\n${text}`);
}

test('two workers: counters and histograms sum, the oldest-lease gauge takes the max', async () => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', FIXTURE], { timeout: 30_000 });
  const { text } = JSON.parse(stdout.trim().split('\n').pop() as string) as { text: string };
  // 3 + 5 scoped leases, plus one held lease per worker.
  expect(sample(text, 'leasepool_acquires_total', { pool: 'cluster', outcome: 'success' })).toBe(3 + 5 + 2);
  expect(sample(text, 'leasepool_lease_duration_seconds_count', { pool: 'cluster' })).toBe(3 + 5);
  expect(sample(text, 'leasepool_acquire_wait_seconds_count', { pool: 'cluster' })).toBe(3 + 5 + 2);
  expect(sample(text, 'leasepool_connections_created_total', { pool: 'cluster' })).toBe(2);
  expect(sample(text, 'leasepool_connections', { pool: 'cluster', state: 'active' })).toBe(2);
  expect(sample(text, 'leasepool_connections_max', { pool: 'cluster' })).toBe(4);
  // Worker 0 has held its lease >= 1.5 s when the primary scrapes; worker 1, ready after 0.2 s,
  // has held its own about as long by then: a sum would say ~3 s, the max says ~1.5 s.
  const oldest = sample(text, 'leasepool_lease_oldest_seconds', { pool: 'cluster' });
  expect(oldest).toBeGreaterThanOrEqual(1.5);
  expect(oldest).toBeLessThan(2.5);
}, 40_000);
