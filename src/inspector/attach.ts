/**
 * Attaching the inspector to a pool: while at least one inspector is attached, the guard records
 * each statement's SQL text and start time (`GuardConfig.trackStatements`), and the pool's leak
 * and reclaim reports are kept in a ring buffer of the last N. Detached (the default), a pool pays
 * nothing for the inspector: one flag read per statement.
 */
import { ConfigError } from '../errors';
import type { ActiveLeaseInfo } from '../lease';
import { Pool } from '../pool';
import type { DeadlineEvent, LeakEvent, LeakReturnedEvent, PoolStats, ReclaimEvent } from '../pool-types';
import { redact } from '../redact';
import type { ReportSnapshot } from './schema';

/** Reports kept per pool by default. */
export const DEFAULT_RECENT_REPORTS = 50;

/**
 * A pool the inspector reads: any leasepool `Pool`, whatever its driver (pools of several drivers
 * can share one inspector). Checked at run time: anything else is a `ConfigError`.
 */
export interface InspectedPool {
  readonly name: string;
  stats(): PoolStats;
  activeLeases(): ActiveLeaseInfo[];
}

/** @internal The pool behind an `InspectedPool` (the inspector reads its lease records). */
export type PoolInternals = Pool<object>;

/** @internal `pools` as a list of pools; `ConfigError` for anything that is not a leasepool pool. */
export function poolsOf(pools: InspectedPool | readonly InspectedPool[]): PoolInternals[] {
  const list: readonly unknown[] = Array.isArray(pools) ? (pools as readonly unknown[]) : [pools];
  return list.map((pool, i) => {
    if (!(pool instanceof Pool)) throw new ConfigError([{ field: Array.isArray(pools) ? `pools[${i}]` : 'pools', problem: 'must be a leasepool pool (createPool())' }]);
    return pool as unknown as PoolInternals;
  });
}

interface Attachment {
  count: number;
  readonly capacity: number;
  /** Oldest first; at most `capacity`. */
  readonly reports: ReportSnapshot[];
  readonly onLeak: (event: LeakEvent) => void;
  readonly onReturned: (event: LeakReturnedEvent) => void;
  readonly onReclaim: (event: ReclaimEvent) => void;
  readonly onDeadline: (event: DeadlineEvent) => void;
}

const attachments = new WeakMap<PoolInternals, Attachment>();

/**
 * Attach an inspector to `pool`; returns the function that detaches it (idempotent). Attachments
 * are counted: the pool stops recording when the last one detaches. `recentReports` is the ring
 * buffer's size, fixed by the first attachment.
 */
export function attachInspector(inspected: InspectedPool, recentReports: number = DEFAULT_RECENT_REPORTS): () => void {
  const pool = poolsOf(inspected)[0] as PoolInternals;
  let attachment = attachments.get(pool);
  if (attachment === undefined) {
    const reports: ReportSnapshot[] = [];
    const capacity = Math.max(0, Math.floor(recentReports));
    const push = (report: ReportSnapshot): void => {
      if (capacity === 0) return;
      if (reports.length >= capacity) reports.shift();
      reports.push(report);
    };
    const created: Attachment = {
      count: 0,
      capacity,
      reports,
      onLeak: (event) => push(fromLease('leak', event, null, null)),
      onReturned: (event) =>
        push({ kind: 'leak_returned', at: new Date().toISOString(), leaseId: event.id, ageMs: event.heldMs, recovery: null, reason: null, inTransaction: null, stack: null }),
      onReclaim: (event) => push(fromLease('reclaim', event, event.kind, redact(event.reason.message))),
      // A lease revoked at its deadline: a reclaim of kind `deadline`, without a stack (not a leak).
      onDeadline: (event) => push(fromLease('reclaim', { ...event, stack: undefined }, 'deadline', redact(event.reason.message))),
    };
    pool.on('leak', created.onLeak);
    pool.on('leakReturned', created.onReturned);
    pool.on('reclaim', created.onReclaim);
    pool.on('deadline', created.onDeadline);
    pool.guardConfig.trackStatements = true;
    attachments.set(pool, created);
    attachment = created;
  }
  attachment.count++;
  const current = attachment;
  let detached = false;
  return () => {
    if (detached) return;
    detached = true;
    if (--current.count > 0) return;
    pool.off('leak', current.onLeak);
    pool.off('leakReturned', current.onReturned);
    pool.off('reclaim', current.onReclaim);
    pool.off('deadline', current.onDeadline);
    pool.guardConfig.trackStatements = false;
    attachments.delete(pool);
  };
}

/** The reports kept for `pool`, newest first (empty when no inspector is attached). */
/** @internal */
export function recentReports(pool: PoolInternals): ReportSnapshot[] {
  const attachment = attachments.get(pool);
  return attachment === undefined ? [] : [...attachment.reports].reverse();
}

/** True while an inspector is attached to `pool`. */
/** @internal */
export function isAttached(pool: PoolInternals): boolean {
  return attachments.has(pool);
}

function fromLease(kind: 'leak' | 'reclaim', event: LeakEvent, recovery: ReclaimEvent['kind'] | null, reason: string | null): ReportSnapshot {
  return {
    kind,
    at: new Date().toISOString(),
    leaseId: event.id,
    ageMs: event.ageMs,
    recovery,
    reason,
    inTransaction: event.inTransaction,
    stack: event.stack ?? null,
  };
}
