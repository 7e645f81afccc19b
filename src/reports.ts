/**
 * What a pool tells its users about its leases and connections: leak reports (log line with the
 * acquire stack, `'leak'` event, counter), the return of a leaked lease, reclaims, and errors of
 * connections nobody was using. Each a function of the pool's public face and one record.
 */
import type { EventEmitter } from 'node:events';
import type { Adapter } from './adapter';
import type { PooledConnection } from './connections';
import type { ActiveLeaseInfo } from './lease';
import type { LeaseRecord } from './lease-record';
import { LeaseTimeoutError } from './errors';
import { formatSite } from './leaks';
import type { Logger } from './logger';
import type { MetricsSink, RecoveryKind } from './metrics';
import type { PoolEvents } from './pool-types';
import { now } from './time';

/** The parts of a pool its reports use. */
export interface ReportingPool<C extends object> extends Pick<EventEmitter<PoolEvents>, 'emit' | 'listenerCount'> {
  readonly name: string;
  readonly adapter: Adapter<C>;
  readonly logger: Logger;
  readonly metrics: MetricsSink;
  readonly options: { readonly leakDetectionMs: number; readonly leakStacksPerSecond: number };
}

/** What `activeLeases()` and the reports say of a lease. */
export function describeLease<C extends object>(adapter: Adapter<C>, record: LeaseRecord<C>): ActiveLeaseInfo {
  return { id: record.id, ageMs: Math.round(now() - record.acquiredAt), inTransaction: inTransaction(adapter, record), stack: formatSite(record.site) };
}

/** The lease's connection is inside a transaction (open or failed). */
function inTransaction<C extends object>(adapter: Adapter<C>, record: LeaseRecord<C>): boolean {
  // A revoked lease still owns its connection until the reclaim has destroyed it.
  const status = record.txDepth > 0 ? 'in_tx' : record.state !== 'released' ? (adapter.txStatus?.(record.connection.raw) ?? 'idle') : 'idle';
  return status === 'in_tx' || status === 'failed';
}

export function reportLeak<C extends object>(pool: ReportingPool<C>, record: LeaseRecord<C>): void {
  pool.metrics.leakDetected();
  const info = describeLease(pool.adapter, record);
  pool.logger.warn(
    { pool: pool.name, leaseId: info.id, ageMs: info.ageMs, inTransaction: info.inTransaction },
    `pool "${pool.name}": lease #${info.id} held for ${info.ageMs} ms (leakDetectionMs=${pool.options.leakDetectionMs}), possible leak; acquired at:\n${info.stack ?? `    (acquire stack not recorded: at most leakStacksPerSecond=${pool.options.leakStacksPerSecond} acquires per second record one)`}`,
  );
  if (pool.listenerCount('leak') > 0) pool.emit('leak', info);
}

export function reportLeakReturned<C extends object>(pool: ReportingPool<C>, record: LeaseRecord<C>): void {
  const heldMs = Math.round(now() - record.acquiredAt);
  pool.logger.warn({ pool: pool.name, leaseId: record.id, heldMs }, `pool "${pool.name}": previously reported leaked lease #${record.id} was returned after ${heldMs} ms`);
  pool.emit('leakReturned', { id: record.id, heldMs });
}

export function reportReclaim<C extends object>(pool: ReportingPool<C>, record: LeaseRecord<C>, kind: RecoveryKind, reason: Error): void {
  pool.metrics.recovery(kind);
  if (kind === 'deadline') {
    // The caller (or the pool's leaseTimeoutMs) asked for this end: no leak stack (none is even
    // formatted: request timeouts can be frequent), no warning.
    const ageMs = Math.round(now() - record.acquiredAt);
    const inTx = inTransaction(pool.adapter, record);
    pool.logger.info?.({ pool: pool.name, leaseId: record.id, kind, ageMs, inTransaction: inTx }, `pool "${pool.name}": lease #${record.id} revoked at its deadline after ${ageMs} ms: ${reason.message}`);
    if (pool.listenerCount('deadline') > 0) {
      const timeoutMs = reason instanceof LeaseTimeoutError ? reason.timeoutMs : undefined;
      pool.emit('deadline', { id: record.id, ageMs, inTransaction: inTx, timeoutMs, reason });
    }
    return;
  }
  const info = describeLease(pool.adapter, record);
  pool.logger.warn(
    { pool: pool.name, leaseId: record.id, kind, ageMs: info.ageMs, inTransaction: info.inTransaction },
    `pool "${pool.name}": lease #${record.id} reclaimed (${kind}) after ${info.ageMs} ms: ${reason.message}` +
      (info.stack !== undefined ? `\nacquired at:\n${info.stack}` : ''),
  );
  if (pool.listenerCount('reclaim') > 0) pool.emit('reclaim', { ...info, kind, reason });
}

/** A connection's first background error: to the pool's `'error'` listeners, else to the log. */
export function reportConnectionError<C extends object>(pool: ReportingPool<C>, conn: PooledConnection<C>, err: unknown): void {
  const error = err instanceof Error ? err : new Error(String(err));
  if (pool.listenerCount('error') > 0) pool.emit('error', error);
  else pool.logger.error({ pool: pool.name, err: error }, `pool "${pool.name}": connection #${conn.id} failed${conn.leased ? ' while leased' : ' while idle'}: ${error.message}`);
}

/** Deferred cleanups that failed at a release: counted, and logged at debug (the caller gets them). */
export function reportCleanupErrors<C extends object>(pool: ReportingPool<C>, record: LeaseRecord<C>, errors: readonly unknown[]): void {
  for (let i = 0; i < errors.length; i++) pool.metrics.recovery('cleanup_error');
  pool.logger.debug?.({ pool: pool.name, leaseId: record.id, errors }, 'deferred cleanup(s) failed');
}
