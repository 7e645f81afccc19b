/**
 * The live lease inspector ("pprof for leases"): who holds which connection, since when, from
 * where, doing what. A snapshot function, a `node:http` handler, and a server of its own.
 */
export { attachInspector, type InspectedPool } from './attach';
export { inspectorHandler, type InspectorHandler } from './handler';
export type { InspectorOptions } from './options';
export { serveInspector, type InspectorServer, type ServeInspectorOptions } from './serve';
export { inspectLeases } from './snapshot';
export {
  INSPECTOR_SCHEMA_VERSION,
  type InspectorSnapshot,
  type LeaseActivity,
  type LeaseSnapshot,
  type LeaseTransaction,
  type PoolSnapshot,
  type ReportSnapshot,
  type StatementSnapshot,
  type WaiterSnapshot,
} from './schema';
