/**
 * Pool options: their defaults, their documentation, and the validation that turns every bad
 * field into one `ConfigError`. Every option takes effect; none is accepted and ignored.
 */
import { ConfigError } from './errors';
import type { Adapter } from './adapter';
import type { Logger } from './logger';
import type { MetricsOptions } from './metrics';
import type { OpenTelemetryOptions } from './telemetry/types';

/** Options of `createPool`. Durations are milliseconds, as the names say. */
export interface PoolOptions {
  /** Pool name: the `pool` label of every metric and the prefix of log lines. Default `'default'`. */
  name?: string | undefined;
  /** Most connections open at once (idle + leased). Integer >= 1. Default 10. */
  max?: number | undefined;
  /** Connections kept open even when idle. Integer, 0 <= min <= max. Default 0. */
  min?: number | undefined;
  /** Longest wait for a lease before `AcquireTimeoutError`. > 0 or `Infinity`. Default 10 000. */
  acquireTimeoutMs?: number | undefined;
  /** Longest time to open one connection (DNS, TCP, TLS, handshake). > 0. Default 5 000. */
  connectTimeoutMs?: number | undefined;
  /** Most callers allowed to wait; one more gets `PoolQueueFullError` at once. Integer >= 0 or `Infinity`. Default `Infinity`. */
  maxWaiting?: number | undefined;
  /** An idle connection above `min` is closed after this long. > 0 or `Infinity` (never). Default 30 000. */
  idleTimeoutMs?: number | undefined;
  /** A connection is closed at its first release after this age (with up to 2.5% jitter). > 0 or `Infinity`. Default 1 800 000. */
  maxLifetimeMs?: number | undefined;
  /** A connection is closed after this many leases. Integer >= 1 or `Infinity`. Default `Infinity`. */
  maxUses?: number | undefined;
  /** A lease held longer than this is reported as a leak (once). >= 0; 0 disables at no per-lease cost. Default 30 000. */
  leakDetectionMs?: number | undefined;
  /**
   * Most acquire stacks recorded per second for leak reports (a token bucket holding one second's
   * worth). Capturing a stack costs V8 several microseconds, and a hot pool more than that in
   * throughput; below this rate every acquire records one, above it a sample does. `Infinity`:
   * every acquire; `0`: none. Default 100.
   */
  leakStacksPerSecond?: number | undefined;
  /** A lease held longer than this is revoked and its connection reclaimed. > 0, or `undefined` (never). Default `undefined`. */
  leaseTimeoutMs?: number | undefined;
  /** Reset session state (`DISCARD ALL`, `COM_RESET_CONNECTION`) at every release. Default `false`. */
  resetOnRelease?: boolean | undefined;
  /** Prometheus metrics into the given prom-client registry; `false` or omitted disables them. */
  metrics?: MetricsOptions | false | undefined;
  /**
   * OpenTelemetry spans and `db.client.connection.*` metrics (needs the optional peer dependency
   * `@opentelemetry/api`; nothing of it is loaded while this is off). Default `false`.
   */
  openTelemetry?: OpenTelemetryOptions | boolean | undefined;
  /** Where warnings (leaks, background errors) go: `{ warn, error, info?, debug? }`, pino-compatible. Default: console for warn/error. */
  logger?: Logger | undefined;
  /**
   * When nothing is leased, let the process exit although idle connections are open (pg-pool's
   * `allowExitOnIdle`): idle connections' sockets are unref'd, a leased one is ref'd again. Needs
   * an adapter with `refConnection` (pg, mysql2). Default `false`.
   */
  allowExitOnIdle?: boolean | undefined;
  /**
   * Also log (`logger.warn`) a connect failure that waiting callers receive as `ConnectError`.
   * A failure nobody waits for (opening `min` connections) is always logged. Default `false`.
   */
  logConnectErrors?: boolean | undefined;
  /**
   * Who hears of a failed connect. `'all'` (default): every caller waiting at that moment gets the
   * error at once, and the next attempt waits a growing backoff (a database that is down costs no
   * caller a full acquire timeout, and is not hammered). `'one'`: only the longest-waiting caller
   * that was already waiting when the attempt began (the caller it was made for) gets it, and the
   * callers still waiting get a new attempt at once: node-postgres' pg-pool semantics, which the pg
   * drop-in `Pool` keeps.
   */
  connectFailure?: 'all' | 'one' | undefined;
}

/** Options after defaults, as the pool uses them. */
export interface ResolvedPoolOptions {
  readonly name: string;
  readonly max: number;
  readonly min: number;
  readonly acquireTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxWaiting: number;
  readonly idleTimeoutMs: number;
  readonly maxLifetimeMs: number;
  readonly maxUses: number;
  readonly leakDetectionMs: number;
  readonly leakStacksPerSecond: number;
  readonly leaseTimeoutMs: number | undefined;
  readonly resetOnRelease: boolean;
  readonly allowExitOnIdle: boolean;
  readonly logConnectErrors: boolean;
  readonly metrics: MetricsOptions | false;
  readonly openTelemetry: OpenTelemetryOptions | boolean;
  readonly logger: Logger | undefined;
  readonly connectFailure: 'all' | 'one';
}

export const DEFAULT_POOL_OPTIONS = {
  name: 'default',
  max: 10,
  min: 0,
  acquireTimeoutMs: 10_000,
  connectTimeoutMs: 5_000,
  maxWaiting: Infinity,
  idleTimeoutMs: 30_000,
  maxLifetimeMs: 1_800_000,
  maxUses: Infinity,
  leakDetectionMs: 30_000,
  leakStacksPerSecond: 100,
  leaseTimeoutMs: undefined,
  resetOnRelease: false,
  allowExitOnIdle: false,
  logConnectErrors: false,
  connectFailure: 'all',
} as const;

const KNOWN_KEYS = new Set<string>([...Object.keys(DEFAULT_POOL_OPTIONS), 'metrics', 'logger', 'openTelemetry']);
const OTEL_KEYS: ReadonlySet<string> = new Set(['tracing', 'metrics', 'tracerProvider', 'meterProvider', 'minAcquireWaitMs', 'traceIdleAcquires']);
const NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
const METRICS_KEYS: ReadonlySet<string> = new Set(['registry', 'prefix', 'buckets']);

type Problem = { field: string; problem: string };

/** The longest delay `setTimeout` honours (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Checks shared by pool and transaction options. */
export const check = {
  integer(problems: Problem[], field: string, value: unknown, min: number, allowInfinity: boolean): void {
    if (allowInfinity && value === Infinity) return;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      problems.push({ field, problem: `must be an integer >= ${min}${allowInfinity ? ' or Infinity' : ''} (got ${show(value)})` });
    }
  },
  duration(problems: Problem[], field: string, value: unknown, opts: { allowZero: boolean; allowInfinity: boolean }): void {
    if (opts.allowInfinity && value === Infinity) return;
    // Above MAX_TIMER_MS Node fires a timer after 1 ms: a huge timeout would act as none at all.
    const ok = typeof value === 'number' && Number.isFinite(value) && (opts.allowZero ? value >= 0 : value > 0) && value <= MAX_TIMER_MS;
    if (!ok) {
      problems.push({
        field,
        problem: `must be a number of milliseconds ${opts.allowZero ? '>= 0' : '> 0'} and <= ${MAX_TIMER_MS}${opts.allowInfinity ? ', or Infinity' : ''} (got ${show(value)})`,
      });
    }
  },
  boolean(problems: Problem[], field: string, value: unknown): void {
    if (typeof value !== 'boolean') problems.push({ field, problem: `must be a boolean (got ${show(value)})` });
  },
};

/** Apply defaults and validate; throws one `ConfigError` naming every bad field. */
export function resolvePoolOptions(input: PoolOptions | undefined): ResolvedPoolOptions {
  const problems: Problem[] = [];
  if (input !== undefined && (input === null || typeof input !== 'object')) {
    throw new ConfigError([{ field: 'options', problem: `must be an object (got ${show(input)})` }]);
  }
  const opts: Record<string, unknown> = { ...(input ?? {}) };
  for (const key of Object.keys(opts)) {
    if (!KNOWN_KEYS.has(key)) problems.push({ field: key, problem: unknownOption(key, KNOWN_KEYS) });
  }
  const pick = <K extends keyof typeof DEFAULT_POOL_OPTIONS>(key: K): unknown =>
    opts[key] === undefined ? DEFAULT_POOL_OPTIONS[key] : opts[key];

  const name = pick('name');
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    problems.push({ field: 'name', problem: `must be 1-64 characters of [A-Za-z0-9_.:-] (got ${show(name)})` });
  }
  const max = pick('max');
  const min = pick('min');
  check.integer(problems, 'max', max, 1, false);
  check.integer(problems, 'min', min, 0, false);
  // Compared only when max itself is valid: a bad max must not make an untouched min look wrong.
  if (typeof max === 'number' && typeof min === 'number' && Number.isInteger(max) && max >= 1 && Number.isInteger(min) && min > max) {
    problems.push({ field: 'min', problem: `must not exceed max (min=${min}, max=${max})` });
  }
  check.duration(problems, 'acquireTimeoutMs', pick('acquireTimeoutMs'), { allowZero: false, allowInfinity: true });
  check.duration(problems, 'connectTimeoutMs', pick('connectTimeoutMs'), { allowZero: false, allowInfinity: false });
  check.integer(problems, 'maxWaiting', pick('maxWaiting'), 0, true);
  check.duration(problems, 'idleTimeoutMs', pick('idleTimeoutMs'), { allowZero: false, allowInfinity: true });
  check.duration(problems, 'maxLifetimeMs', pick('maxLifetimeMs'), { allowZero: false, allowInfinity: true });
  check.integer(problems, 'maxUses', pick('maxUses'), 1, true);
  check.duration(problems, 'leakDetectionMs', pick('leakDetectionMs'), { allowZero: true, allowInfinity: false });
  const stacksPerSecond = pick('leakStacksPerSecond');
  if (!(typeof stacksPerSecond === 'number' && stacksPerSecond >= 0 && !Number.isNaN(stacksPerSecond))) {
    problems.push({ field: 'leakStacksPerSecond', problem: `must be a number >= 0 or Infinity (got ${show(stacksPerSecond)})` });
  }
  if (opts['leaseTimeoutMs'] !== undefined) {
    check.duration(problems, 'leaseTimeoutMs', opts['leaseTimeoutMs'], { allowZero: false, allowInfinity: false });
  }
  check.boolean(problems, 'resetOnRelease', pick('resetOnRelease'));
  check.boolean(problems, 'allowExitOnIdle', pick('allowExitOnIdle'));
  check.boolean(problems, 'logConnectErrors', pick('logConnectErrors'));
  const connectFailure = pick('connectFailure');
  if (connectFailure !== 'all' && connectFailure !== 'one') {
    problems.push({ field: 'connectFailure', problem: `must be 'all' or 'one' (got ${show(connectFailure)})` });
  }

  const metrics = opts['metrics'];
  if (metrics !== undefined && metrics !== false) {
    const registry = (metrics as { registry?: unknown } | null)?.registry;
    if (typeof metrics !== 'object' || metrics === null || typeof (registry as { registerMetric?: unknown } | undefined)?.registerMetric !== 'function') {
      problems.push({ field: 'metrics', problem: 'must be false or { registry } with a prom-client Registry' });
    } else {
      for (const key of Object.keys(metrics)) {
        if (!METRICS_KEYS.has(key)) problems.push({ field: `metrics.${key}`, problem: unknownOption(key, METRICS_KEYS, 'a metrics option (registry, prefix, buckets)') });
      }
    }
  }
  const openTelemetry = opts['openTelemetry'];
  checkOpenTelemetry(problems, openTelemetry);
  const logger = opts['logger'];
  if (logger !== undefined) {
    const l = logger as Partial<Record<'warn' | 'error', unknown>> | null;
    if (typeof logger !== 'object' || logger === null || typeof l?.warn !== 'function' || typeof l?.error !== 'function') {
      problems.push({ field: 'logger', problem: 'must be an object with warn() and error() functions' });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    name: name as string,
    max: max as number,
    min: min as number,
    acquireTimeoutMs: pick('acquireTimeoutMs') as number,
    connectTimeoutMs: pick('connectTimeoutMs') as number,
    maxWaiting: pick('maxWaiting') as number,
    idleTimeoutMs: pick('idleTimeoutMs') as number,
    maxLifetimeMs: pick('maxLifetimeMs') as number,
    maxUses: pick('maxUses') as number,
    leakDetectionMs: pick('leakDetectionMs') as number,
    leakStacksPerSecond: stacksPerSecond as number,
    leaseTimeoutMs: opts['leaseTimeoutMs'] as number | undefined,
    resetOnRelease: pick('resetOnRelease') as boolean,
    allowExitOnIdle: pick('allowExitOnIdle') as boolean,
    logConnectErrors: pick('logConnectErrors') as boolean,
    metrics: (metrics as MetricsOptions | undefined) ?? false,
    openTelemetry: (openTelemetry as OpenTelemetryOptions | boolean | undefined) ?? false,
    logger: logger as Logger | undefined,
    connectFailure: connectFailure as 'all' | 'one',
  };
}

function checkOpenTelemetry(problems: Problem[], value: unknown): void {
  if (value === undefined || typeof value === 'boolean') return;
  if (typeof value !== 'object' || value === null) {
    problems.push({ field: 'openTelemetry', problem: `must be a boolean or { tracing, metrics, tracerProvider, meterProvider, minAcquireWaitMs, traceIdleAcquires } (got ${show(value)})` });
    return;
  }
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!OTEL_KEYS.has(key)) problems.push({ field: `openTelemetry.${key}`, problem: unknownOption(key, OTEL_KEYS, 'an openTelemetry option') });
  }
  for (const key of ['tracing', 'metrics', 'traceIdleAcquires']) {
    if (o[key] !== undefined) check.boolean(problems, `openTelemetry.${key}`, o[key]);
  }
  if (o['minAcquireWaitMs'] !== undefined) check.duration(problems, 'openTelemetry.minAcquireWaitMs', o['minAcquireWaitMs'], { allowZero: true, allowInfinity: true });
  const provider = (key: string, method: string): void => {
    const p = o[key];
    if (p !== undefined && typeof (p as Record<string, unknown> | null)?.[method] !== 'function') {
      problems.push({ field: `openTelemetry.${key}`, problem: `must have a ${method}() method (an @opentelemetry/api ${key === 'tracerProvider' ? 'TracerProvider' : 'MeterProvider'})` });
    }
  };
  provider('tracerProvider', 'getTracer');
  provider('meterProvider', 'getMeter');
}

/**
 * Validate the options of one call (`acquire`, `withLease`): `signal` must be an AbortSignal, the
 * named durations valid, nothing else present. Throws one `ConfigError` naming every bad field.
 */
export function checkCallOptions(input: unknown, durations: Readonly<Record<string, { readonly allowInfinity: boolean }>>): void {
  if (input === undefined) return;
  if (input === null || typeof input !== 'object') throw new ConfigError([{ field: 'options', problem: `must be an object (got ${show(input)})` }]);
  const problems: Problem[] = [];
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue;
    if (key === 'signal') {
      if (!(value instanceof AbortSignal)) problems.push({ field: key, problem: 'must be an AbortSignal' });
      continue;
    }
    const rule = durations[key];
    if (rule === undefined) problems.push({ field: key, problem: unknownOption(key, ['signal', ...Object.keys(durations)]) });
    else check.duration(problems, key, value, { allowZero: false, allowInfinity: rule.allowInfinity });
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

/** Render a bad value for a message without dumping objects (which may hold secrets). */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined || value === null) return String(value);
  return typeof value;
}

/**
 * "is not a known option", with "(did you mean …?)" when a known name is close: the same name in
 * another case (`leakDetectionMS`), or at most two edits away for names of five letters or more.
 */
export function unknownOption(key: string, known: Iterable<string>, what = 'a known option'): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = key.toLowerCase();
  for (const name of known) {
    const distance = name.toLowerCase() === lower ? 0 : editDistance(lower, name.toLowerCase());
    if (distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  const close = best !== undefined && (bestDistance === 0 || (bestDistance <= 2 && key.length >= 5 && bestDistance < best.length / 3));
  return close ? `is not ${what} (did you mean ${best}?)` : `is not ${what}`;
}

/** Levenshtein distance (names are short: the quadratic table is fine). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * The pool's real `max` for this adapter (PGlite allows one connection), with a warning when the
 * caller asked for more; `resetOnRelease` with an adapter that cannot reset is a `ConfigError`.
 */
export function maxFor(adapter: Adapter<object>, options: ResolvedPoolOptions, maxGiven: boolean, logger: Logger): number {
  if (options.resetOnRelease && typeof adapter.reset !== 'function') {
    throw new ConfigError([{ field: 'resetOnRelease', problem: `is not supported by the ${adapter.name} adapter (it has no reset())` }]);
  }
  const limit = adapter.maxConnections;
  if (limit === undefined || options.max <= limit) return options.max;
  // Only a max the caller asked for is worth a warning; the default simply fits the adapter.
  if (maxGiven) {
    logger.warn(
      { pool: options.name, max: options.max, adapterMax: limit },
      `pool "${options.name}": max ${options.max} clamped to ${limit}: the ${adapter.name} adapter allows only ${limit} connection(s)`,
    );
  }
  return limit;
}
