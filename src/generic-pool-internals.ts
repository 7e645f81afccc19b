/**
 * The places we reach into generic-pool (pinned at 3.9.0): withdrawing a request whose
 * caller gave up, failing every request at shutdown, and running the evictor on demand.
 * generic-pool has no public way to cancel an acquire; without this an abandoned request stays
 * queued and keeps generic-pool creating connections for nobody. If the private shape ever
 * changes, these functions do nothing and the pool falls back to handing an abandoned
 * connection straight back (and to the scheduled eviction run).
 */
import type { Pool as GenericPool } from 'generic-pool';

interface ResourceRequest {
  readonly promise: Promise<unknown>;
  reject(reason: unknown): void;
}
interface WaitingQueue {
  readonly tail: ResourceRequest | undefined;
  dequeue(): ResourceRequest | undefined;
}

function queueOf(gp: GenericPool<unknown>): WaitingQueue | undefined {
  const queue = (gp as unknown as { _waitingClientsQueue?: WaitingQueue })._waitingClientsQueue;
  return queue !== undefined && typeof queue.dequeue === 'function' ? queue : undefined;
}

/** The queued request behind `promise`, if it is still the newest one (call right after acquire). */
export function newestRequest(gp: GenericPool<unknown>, promise: Promise<unknown>): ResourceRequest | undefined {
  const tail = queueOf(gp)?.tail;
  return tail !== undefined && tail.promise === promise ? tail : undefined;
}

/** Withdraw a still-pending request: generic-pool removes queue entries rejected as `TimeoutError`. */
export function withdrawRequest(request: ResourceRequest | undefined): void {
  if (request === undefined) return;
  const withdrawn = new Error('acquire withdrawn by leasepool');
  withdrawn.name = 'TimeoutError';
  request.reject(withdrawn);
}

/** Reject every queued request (shutdown). */
export function rejectAllRequests(gp: GenericPool<unknown>, reason: Error): void {
  const queue = queueOf(gp);
  if (queue === undefined) return;
  for (let request = queue.dequeue(); request !== undefined; request = queue.dequeue()) request.reject(reason);
}

/**
 * Run the evictor now (it closes idle connections that broke, see `evictorFor` in pool.ts),
 * instead of waiting for the next scheduled run.
 */
export function evictNow(gp: GenericPool<unknown>): void {
  const evict = (gp as unknown as { _evict?: () => void })._evict;
  if (typeof evict === 'function') evict.call(gp);
}
