/**
 * `pool.close()`: stop new acquires, wait for active leases until the deadline, reclaim the rest,
 * close idle connections, dispose of the adapter. Every step has a deadline: close never hangs,
 * even when every socket is blackholed.
 */
import type { Pool as GenericPool } from 'generic-pool';
import type { Adapter } from './adapter';
import type { PooledConnection } from './connections';
import { PoolClosedError } from './errors';
import { rejectAllRequests } from './generic-pool-internals';
import type { ActiveLeases } from './lease';
import type { LeakDetector } from './leaks';
import type { Logger } from './logger';
import type { MetricsSink } from './metrics';
import type { CloseSummary } from './pool-types';
import { reclaimLease } from './release';
import { now, withTimeout } from './time';
import type { WaitingRoom } from './waiters';

/** The parts of a pool that closing it touches. */
export interface ClosingPool<C extends object> {
  readonly name: string;
  readonly adapter: Adapter<C>;
  readonly metrics: MetricsSink;
  readonly logger: Logger;
  readonly gp: GenericPool<PooledConnection<C>>;
  readonly factory: { stop(): void };
  readonly waiters: WaitingRoom<C>;
  readonly leaks: LeakDetector<C>;
  readonly active: ActiveLeases<C>;
  readonly controlTimeoutMs: number;
  /** Ask to be called when the last active lease is gone (`undefined` to stop asking). */
  onDrained(callback: (() => void) | undefined): void;
  /** Leases reclaimed (deadline, GC) since close() began: not "released" in its summary. */
  reclaimedWhileClosing(): number;
}

/** Close `pool` (already marked closed, so new acquires are refused). */
export async function closePool<C extends object>(pool: ClosingPool<C>, timeoutMs: number): Promise<CloseSummary> {
  const deadline = now() + timeoutMs;
  pool.leaks.stop();
  pool.factory.stop();
  const closedError = new PoolClosedError(pool.name);
  pool.waiters.stop();
  pool.waiters.failAll(closedError, 'rejected');
  rejectAllRequests(pool.gp as GenericPool<unknown>, closedError);

  const activeAtStart = pool.active.size;
  if (activeAtStart > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - now()));
      pool.onDrained(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    pool.onDrained(undefined);
  }
  const leftovers = [...pool.active];
  const reclaimedDuringWait = pool.reclaimedWhileClosing();
  // Past the deadline one grace period (controlTimeoutMs) covers reclaiming what is left and
  // closing idle connections, so close() resolves by timeoutMs + controlTimeoutMs even when
  // every socket is blackholed: half of it for cancel + rollback, the rest for the closes.
  const graceEnd = Math.max(now(), deadline) + pool.controlTimeoutMs;
  // One error per lease: the scope protocol attaches cleanup errors to the error its caller gets.
  await Promise.all(leftovers.map((record) => reclaimLease(record, 'shutdown_reclaimed', new PoolClosedError(pool.name), pool.controlTimeoutMs / 2)));

  const gp = pool.gp;
  const closeIdle = gp.drain().then(() => gp.clear());
  await withTimeout(closeIdle, Math.max(0, graceEnd - now())).catch((err: unknown) =>
    pool.logger.warn({ pool: pool.name, err }, `pool "${pool.name}": closing idle connections did not finish in time`),
  );
  if (pool.adapter.dispose !== undefined) {
    await withTimeout(pool.adapter.dispose(), Math.max(0, deadline - now()) + pool.controlTimeoutMs).catch((err: unknown) =>
      pool.logger.warn({ pool: pool.name, err }, `pool "${pool.name}": disposing the ${pool.adapter.name} adapter failed`),
    );
  }
  pool.metrics.detach();
  return { released: activeAtStart - leftovers.length - reclaimedDuringWait, reclaimed: leftovers.length + reclaimedDuringWait };
}
