/**
 * leasepool: a transactional connection pool whose leases release themselves.
 * @packageDocumentation
 */
import { LeaseMisuseError } from './errors';
import { Pool } from './pool';
import { runTransaction, type Transaction, type TxOptions } from './transaction';

export { createPool, Pool } from './pool';
export type { AcquireOptions, CloseSummary, DeadlineEvent, LeaseScopeOptions, LeakEvent, LeakReturnedEvent, PoolEvents, PoolStats, ReclaimEvent } from './pool';
export { Lease } from './lease';
export type { ActiveLeaseInfo, LeaseState } from './lease';
export type { Transaction, TxOptions } from './transaction';
export type { PoolOptions } from './options';
export type { PasswordSource } from './credentials';
export type { Logger } from './logger';
export type { MetricsOptions, AcquireOutcome, TxOutcome, CloseReason, RecoveryKind } from './metrics';
export type { Adapter, BeginOptions, CallerStack, ConnectionEvents, IsolationLevel, QueryFunction, ServerIdentity, SessionRole, TxDialect, TxStatus } from './adapter';
export type { OpenTelemetryOptions } from './telemetry/types';
export type { Cleanup } from './defer';
export { shutdownOnSignals } from './shutdown';
export type { ShutdownOptions } from './shutdown';
export {
  LeasepoolError,
  ConfigError,
  ConnectError,
  PoolClosedError,
  AcquireTimeoutError,
  PoolQueueFullError,
  LeaseReleasedError,
  LeaseRevokedError,
  LeaseTimeoutError,
  NestedAcquireError,
  TxOutcomeUnknownError,
  TxAbortedError,
  TxEndedError,
  LeaseMisuseError,
  CleanupError,
  suppressedErrors,
} from './errors';
export { redact } from './redact';
export { serveMetrics, type MetricsServer, type MetricsRegistryLike, type ServeMetricsOptions } from './serve-metrics';
export {
  serveInspector,
  inspectorHandler,
  inspectLeases,
  attachInspector,
  INSPECTOR_SCHEMA_VERSION,
  type InspectorServer,
  type ServeInspectorOptions,
  type InspectorHandler,
  type InspectorOptions,
  type InspectedPool,
  type InspectorSnapshot,
  type PoolSnapshot,
  type LeaseSnapshot,
  type LeaseActivity,
  type LeaseTransaction,
  type StatementSnapshot,
  type WaiterSnapshot,
  type ReportSnapshot,
} from './inspector';

/** `withTx(pool, fn, options)`: the same as `pool.withTx(fn, options)`. */
export function withTx<C extends object, R>(
  pool: Pool<C>,
  fn: (conn: C, tx: Transaction<C>) => R | PromiseLike<R>,
  options?: TxOptions,
): Promise<R> {
  // A lease or a connection passed for the pool (plain JavaScript callers): say so, do not crash.
  const value: unknown = pool;
  if (!(value instanceof Pool)) {
    const ctor = value !== null && typeof value === 'object' ? (value as { constructor?: { name?: unknown } }).constructor : undefined;
    const got = value === null ? 'null' : ctor !== undefined && ctor !== Object ? `a ${String(ctor.name)}` : typeof value;
    return Promise.reject(new LeaseMisuseError(`withTx(pool, fn): the first argument must be a leasepool Pool (got ${got})`));
  }
  const site = pool.captureAcquireSite(withTx);
  return runTransaction(pool, fn, options, site);
}
export { Cluster, createCluster } from './cluster/cluster';
export type { ClusterCallOptions, ClusterEvents, ClusterHost, ClusterOptions, ClusterTarget, HostInfo, TargetSessionAttrs } from './cluster/types';
