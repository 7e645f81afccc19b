/**
 * Building the inspector's snapshot (schema.ts) from pools: their stats, their active leases
 * (read from the lease records, oldest first), their waiters, and the reports kept while attached.
 * Reading only: nothing here changes a lease, except `reclaimFromInspector`, which takes one back
 * through the pool's own reclaim path.
 */
import type { Adapter } from '../adapter';
import type { LeaseRecord } from '../lease-record';
import { formatSite } from '../leaks';
import { redact } from '../redact';
import { reclaimLease } from '../release';
import { now } from '../time';
import { isAttached, poolsOf, recentReports, type InspectedPool, type PoolInternals } from './attach';
import { INSPECTOR_SCHEMA_VERSION, type InspectorSnapshot, type LeaseActivity, type LeaseSnapshot, type LeaseTransaction, type PoolSnapshot } from './schema';

/** Longest statement text a snapshot carries. */
export const MAX_SQL_CHARS = 2_000;

/**
 * A snapshot of `pools` in the inspector's JSON schema (what `GET /debug/leases.json` answers).
 * Statement text and recent reports are there only for pools an inspector is attached to
 * (`attachInspector`, `serveInspector`, `inspectorHandler`).
 */
export function inspectLeases(pools: InspectedPool | readonly InspectedPool[], options: { readonly reclaimEnabled?: boolean } = {}): InspectorSnapshot {
  return inspectInternals(poolsOf(pools), options.reclaimEnabled === true);
}

/** @internal `inspectLeases` on pools already checked. */
export function inspectInternals(list: readonly PoolInternals[], reclaimEnabled: boolean): InspectorSnapshot {
  return {
    schemaVersion: INSPECTOR_SCHEMA_VERSION,
    generatedAt: new Date().toISOString(),
    reclaimEnabled,
    pools: list.map(snapshotPool),
  };
}

function snapshotPool(pool: PoolInternals): PoolSnapshot {
  const at = now();
  const view = pool.inspectorView();
  const leases: LeaseSnapshot[] = [];
  const wallAt = Date.now();
  for (const record of view.active) leases.push(snapshotLease(pool.adapter, record, at, wallAt));
  const stats = pool.stats();
  return {
    name: pool.name,
    driver: pool.adapter.name,
    target: redact(String(pool.adapter.target)),
    stats: { size: stats.size, idle: stats.idle, active: stats.active, pending: stats.pending, max: stats.max, min: stats.min, closed: stats.closed },
    leakDetectionMs: pool.options.leakDetectionMs,
    statementTracking: pool.guardConfig.trackStatements,
    leases,
    waiters: view.waiters.waitingSince().map((startedAt) => ({ waitingMs: Math.max(0, Math.round(at - startedAt)) })),
    recent: isAttached(pool) ? recentReports(pool) : [],
  };
}

/** `at`: `now()`, for the lease's times; `wallAt`: `Date.now()`, for its statement's (see guard.ts). */
function snapshotLease(adapter: Adapter<object>, record: LeaseRecord<object>, at: number, wallAt: number): LeaseSnapshot {
  const transaction = transactionOf(adapter, record);
  const state: LeaseActivity =
    record.inflight > 0 ? 'running' : transaction === 'failed' ? 'failed_transaction' : transaction === 'open' ? 'in_transaction' : 'idle';
  const sql = record.inflight > 0 ? record.sqlText : undefined;
  let backendId: number | string | null = null;
  try {
    const id = adapter.backendId?.(record.connection.raw);
    if (typeof id === 'number' || typeof id === 'string') backendId = id;
  } catch {
    // An adapter hook that throws must not break the page.
  }
  return {
    id: record.id,
    ageMs: Math.max(0, Math.round(at - record.acquiredAt)),
    state,
    transaction,
    txDepth: record.txDepth,
    savepointDepth: Math.max(0, record.txDepth - 1),
    inflight: record.inflight,
    statement: sql === undefined ? null : { sql: sql.length > MAX_SQL_CHARS ? `${sql.slice(0, MAX_SQL_CHARS)}…` : sql, runningMs: Math.max(0, wallAt - record.sqlStartedAt) },
    backendId,
    deadlineLeftMs: record.deadlineAt === Infinity ? null : Math.max(0, Math.round(record.deadlineAt - at)),
    leaked: record.leakReported,
    stack: formatSite(record.site) ?? null,
  };
}

/** The lease's own bookkeeping (open withTx frames, a lost transaction), then what the driver reports. */
function transactionOf(adapter: Adapter<object>, record: LeaseRecord<object>): LeaseTransaction {
  if (record.txLost !== undefined) return 'failed';
  let status: string | undefined;
  try {
    status = adapter.txStatus?.(record.connection.raw);
  } catch {
    status = 'unknown';
  }
  if (status === 'failed') return 'failed';
  if (record.txDepth > 0 || status === 'in_tx') return 'open';
  return status === 'unknown' ? 'unknown' : 'none';
}

/** Why the inspector could not reclaim a lease. */
export type ReclaimRefusal = 'no_such_pool' | 'no_such_lease';

/**
 * @internal Take back active lease `id` of the pool named `poolName` from the inspector: through the pool's
 * own reclaim path (revoked, statement cancelled, rolled back, connection destroyed, reported as
 * `leak_reclaimed`). Resolves when the reclaim is done, or to why nothing was reclaimed.
 */
export async function reclaimFromInspector(pools: readonly PoolInternals[], poolName: string, id: number): Promise<true | ReclaimRefusal> {
  const named = pools.filter((pool) => pool.name === poolName);
  if (named.length === 0) return 'no_such_pool';
  for (const pool of named) {
    for (const record of pool.inspectorView().active) {
      if (record.id !== id) continue;
      await reclaimLease(record, 'leak_reclaimed', new Error(`lease #${id} reclaimed by an operator from the lease inspector`));
      return true;
    }
  }
  return 'no_such_lease';
}
