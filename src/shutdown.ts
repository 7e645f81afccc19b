/**
 * Graceful shutdown on process signals: the first signal closes every pool (each with its
 * deadline), then lets the process exit with the conventional code for the signal.
 */
import { constants as osConstants } from 'node:os';
import { ConfigError } from './errors';
import { check, show, unknownOption } from './options';
import type { CloseSummary } from './pool';

interface Closable {
  readonly name: string;
  close(options?: { timeoutMs?: number }): Promise<CloseSummary>;
}

export interface ShutdownOptions {
  /** Signals to handle. Default `['SIGTERM', 'SIGINT']`. */
  signals?: NodeJS.Signals[] | undefined;
  /** Deadline for closing each pool. Default 10 000. */
  timeoutMs?: number | undefined;
  /** Exit the process after closing (default true; code 128 + signal number). */
  exit?: boolean | undefined;
  /** Called with each pool's summary (or error) before exiting. */
  onClosed?: ((results: Array<{ pool: string; summary?: CloseSummary; error?: unknown }>) => void) | undefined;
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGTERM: 15 };
const OPTION_KEYS: ReadonlySet<string> = new Set(['signals', 'timeoutMs', 'exit', 'onClosed']);

/** Validate `shutdownOnSignals`' options; throws one `ConfigError` naming every bad field. */
function checkOptions(pools: unknown, options: unknown): void {
  const problems: { field: string; problem: string }[] = [];
  const list = Array.isArray(pools) ? pools : [pools];
  if (list.some((p) => p === null || typeof p !== 'object' || typeof (p as Partial<Closable>).close !== 'function')) {
    problems.push({ field: 'pools', problem: 'must be a pool or an array of pools' });
  }
  if (options === null || typeof options !== 'object') throw new ConfigError([...problems, { field: 'options', problem: `must be an object (got ${show(options)})` }]);
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!OPTION_KEYS.has(key)) problems.push({ field: key, problem: unknownOption(key, OPTION_KEYS, 'a shutdownOnSignals option') });
  const signals = o['signals'];
  if (signals !== undefined) {
    const known = Object.keys(osConstants.signals);
    if (!Array.isArray(signals) || signals.length === 0 || signals.some((sig) => typeof sig !== 'string' || !known.includes(sig))) {
      problems.push({ field: 'signals', problem: `must be a non-empty array of signal names such as ['SIGTERM', 'SIGINT'] (got ${Array.isArray(signals) ? 'an array with unknown names' : show(signals)})` });
    }
  }
  if (o['timeoutMs'] !== undefined) check.duration(problems, 'timeoutMs', o['timeoutMs'], { allowZero: true, allowInfinity: false });
  if (o['exit'] !== undefined) check.boolean(problems, 'exit', o['exit']);
  if (o['onClosed'] !== undefined && typeof o['onClosed'] !== 'function') problems.push({ field: 'onClosed', problem: 'must be a function' });
  if (problems.length > 0) throw new ConfigError(problems);
}

/**
 * Close `pools` on the first of `signals`; returns a function that removes the handlers.
 * A second signal while closing exits at once. Bad options throw `ConfigError`.
 */
export function shutdownOnSignals(pools: Closable | readonly Closable[], options: ShutdownOptions = {}): () => void {
  checkOptions(pools, options);
  const list: readonly Closable[] = Array.isArray(pools) ? pools : [pools as Closable];
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const timeoutMs = options.timeoutMs ?? 10_000;
  let shuttingDown = false;

  const handler = (signal: NodeJS.Signals): void => {
    const exitCode = 128 + (SIGNAL_NUMBERS[signal] ?? osConstants.signals[signal] ?? 15);
    if (shuttingDown) {
      process.exit(exitCode);
      return; // process.exit can be stubbed (tests, process managers): never close twice
    }
    shuttingDown = true;
    void Promise.all(
      list.map((pool) =>
        pool.close({ timeoutMs }).then(
          (summary) => ({ pool: pool.name, summary }),
          (error: unknown) => ({ pool: pool.name, error }),
        ),
      ),
    ).then((results) => {
      try {
        options.onClosed?.(results);
      } catch (err) {
        // The pools are closed; a failing report must not turn the exit into an unhandled rejection.
        process.stderr.write(`leasepool: shutdownOnSignals onClosed threw: ${err instanceof Error ? err.message : String(err)}\n`);
      }
      if (options.exit !== false) process.exit(exitCode);
    });
  };
  for (const signal of signals) process.on(signal, handler);
  return () => {
    for (const signal of signals) process.off(signal, handler);
  };
}
