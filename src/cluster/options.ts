/**
 * The cluster's options: defaults and the validation that names every bad field in one
 * `ConfigError`.
 */
import type { QueryFunction } from '../adapter';
import { ConfigError } from '../errors';
import { show, unknownOption } from '../options';
import { TARGETS } from './routing';
import type { ClusterOptions, ClusterTarget } from './types';

export interface ResolvedClusterOptions {
  readonly name: string;
  readonly hostNames: readonly string[];
  /** The pool name of each host. */
  readonly poolNames: readonly string[];
  readonly healthCheckIntervalMs: number;
  readonly probeTimeoutMs: number;
  readonly probeBackoffMaxMs: number;
  readonly maxLagMs: number;
  readonly replicaFallback: 'primary' | 'fail';
  readonly readOnlyTarget: ClusterTarget;
  readonly readYourWritesMs: number;
  readonly waitForReplayMs: number;
  readonly failoverTimeoutMs: number;
}

const KEYS = new Set([
  'hosts',
  'name',
  'pool',
  'metrics',
  'logger',
  'healthCheckIntervalMs',
  'probeTimeoutMs',
  'probeBackoffMaxMs',
  'maxLagMs',
  'replicaFallback',
  'readOnlyTarget',
  'readYourWritesMs',
  'waitForReplayMs',
  'failoverTimeoutMs',
]);
const HOST_KEYS = new Set(['adapter', 'name', 'poolName', 'pool']);
const POOL_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
const NAME = /^[A-Za-z0-9_.:-]{1,40}$/;

/** `address:port` of an adapter's server, made fit for a pool name. */
function defaultHostName(server: { address?: string | undefined; port?: number | undefined } | undefined, index: number): string {
  const raw = server?.address === undefined ? `host${index + 1}` : server.port === undefined ? server.address : `${server.address}:${server.port}`;
  return raw.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 40);
}

export function resolveClusterOptions<C extends object, Q extends QueryFunction>(input: ClusterOptions<C, Q>): ResolvedClusterOptions {
  if (input === null || typeof input !== 'object') throw new ConfigError([{ field: 'options', problem: 'must be an object with hosts' }]);
  const problems: { field: string; problem: string }[] = [];
  for (const key of Object.keys(input)) if (!KEYS.has(key)) problems.push({ field: key, problem: unknownOption(key, KEYS, 'a cluster option') });

  const name = input.name ?? 'cluster';
  if (typeof name !== 'string' || !NAME.test(name)) problems.push({ field: 'name', problem: `must be 1-40 characters of [A-Za-z0-9_.:-] (got ${show(name)})` });

  const hostNames: string[] = [];
  const poolNames: string[] = [];
  if (!Array.isArray(input.hosts) || input.hosts.length === 0) {
    problems.push({ field: 'hosts', problem: 'must be a non-empty array of { adapter, name?, pool? }' });
  } else {
    input.hosts.forEach((host, i) => {
      const at = `hosts[${i}]`;
      if (host === null || typeof host !== 'object') {
        problems.push({ field: at, problem: 'must be an object { adapter, name?, pool? }' });
        return;
      }
      for (const key of Object.keys(host)) if (!HOST_KEYS.has(key)) problems.push({ field: `${at}.${key}`, problem: unknownOption(key, HOST_KEYS, 'a host option') });
      const adapter = host.adapter as Partial<ClusterOptions<C, Q>['hosts'][number]['adapter']> | undefined;
      if (adapter === null || typeof adapter !== 'object') problems.push({ field: `${at}.adapter`, problem: 'must be an adapter (pgAdapter(), mysqlAdapter())' });
      else if (typeof adapter.sessionRole !== 'function') problems.push({ field: `${at}.adapter`, problem: `the ${String(adapter.name)} adapter cannot tell a primary from a replica (no sessionRole)` });
      const hostName = host.name ?? defaultHostName(adapter?.server, i);
      if (typeof hostName !== 'string' || !NAME.test(hostName)) problems.push({ field: `${at}.name`, problem: `must be 1-40 characters of [A-Za-z0-9_.:-] (got ${show(hostName)})` });
      else if (hostNames.includes(hostName)) problems.push({ field: `${at}.name`, problem: `"${hostName}" names two hosts` });
      hostNames.push(String(hostName));
      const poolName = host.poolName ?? `${String(name)}:${String(hostName)}`;
      if (typeof poolName !== 'string' || !POOL_NAME.test(poolName)) problems.push({ field: `${at}.poolName`, problem: `must be 1-64 characters of [A-Za-z0-9_.:-] (got ${show(poolName)})` });
      else if (poolNames.includes(poolName)) problems.push({ field: `${at}.poolName`, problem: `"${poolName}" names two host pools` });
      poolNames.push(String(poolName));
    });
  }

  const duration = (field: keyof ClusterOptions<C, Q>, fallback: number, { zero = false, infinity = false } = {}): number => {
    const value = input[field] ?? fallback;
    const ok = typeof value === 'number' && (value === Infinity ? infinity : Number.isFinite(value) && (zero ? value >= 0 : value > 0) && value < 2 ** 31);
    if (!ok) problems.push({ field, problem: `must be a number of milliseconds ${zero ? '>= 0' : '> 0'}${infinity ? ' or Infinity' : ''} (got ${show(value)})` });
    return value as number;
  };
  const healthCheckIntervalMs = duration('healthCheckIntervalMs', 1_000);
  const probeTimeoutMs = duration('probeTimeoutMs', 2_000);
  const probeBackoffMaxMs = duration('probeBackoffMaxMs', 5_000);
  const maxLagMs = duration('maxLagMs', Infinity, { zero: true, infinity: true });
  const readYourWritesMs = duration('readYourWritesMs', Infinity, { zero: true, infinity: true });
  const waitForReplayMs = duration('waitForReplayMs', 0, { zero: true });
  const failoverTimeoutMs = duration('failoverTimeoutMs', 30_000);

  const replicaFallback = input.replicaFallback ?? 'primary';
  if (replicaFallback !== 'primary' && replicaFallback !== 'fail') problems.push({ field: 'replicaFallback', problem: `must be 'primary' or 'fail' (got ${show(replicaFallback)})` });
  const readOnlyTarget = input.readOnlyTarget ?? 'replica';
  if (!TARGETS.includes(readOnlyTarget)) problems.push({ field: 'readOnlyTarget', problem: `must be one of ${TARGETS.join(', ')} (got ${show(readOnlyTarget)})` });
  if (waitForReplayMs > 0 && Array.isArray(input.hosts)) {
    input.hosts.forEach((host, i) => {
      const a = host?.adapter;
      if (a !== undefined && a !== null && (typeof a.writePosition !== 'function' || typeof a.hasReplayed !== 'function')) {
        problems.push({ field: `hosts[${i}].adapter`, problem: `waitForReplayMs needs write positions, which the ${a.name} adapter does not report` });
      }
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    name,
    hostNames,
    poolNames,
    healthCheckIntervalMs,
    probeTimeoutMs,
    probeBackoffMaxMs,
    maxLagMs,
    replicaFallback,
    readOnlyTarget,
    readYourWritesMs,
    waitForReplayMs,
    failoverTimeoutMs,
  };
}

/** `target` of one call, checked. */
export function checkTarget(target: unknown): asserts target is ClusterTarget | undefined {
  if (target !== undefined && !TARGETS.includes(target as ClusterTarget)) {
    throw new ConfigError([{ field: 'target', problem: `must be one of ${TARGETS.join(', ')} (got ${show(target)})` }]);
  }
}
