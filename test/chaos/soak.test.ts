/**
 * The soak: 1,000,000 leases on the in-memory adapter (default options: leak detection on, an
 * acquire site per lease), 4 callers on max 4, one body in 100 throws. Heap after == heap before
 * within noise (full GCs; npm test runs node with --expose-gc), nothing left active.
 */
import { soak } from './scenarios/soak';

test('1,000,000 leases leave the heap where it was', async () => {
  expect(typeof (globalThis as { gc?: unknown }).gc).toBe('function');
  const report = await soak();
  expect(report.issues).toEqual([]);
  expect(report.unexpected).toBe(0);
  expect(report.thrown).toBe(10_000);
  expect(report.openConnections).toBeLessThanOrEqual(4);
  expect(report.growthKiB).toBeLessThan(Math.max(1024, report.heapBeforeMiB * 1024 * 0.05));
}, 120_000);
