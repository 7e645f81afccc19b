/**
 * Graceful shutdown on process signals: the first signal closes every pool (each with its
 * deadline), then lets the process exit with the conventional code for the signal.
 */
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

/**
 * Close `pools` on the first of `signals`; returns a function that removes the handlers.
 * A second signal while closing exits at once.
 */
export function shutdownOnSignals(pools: Closable | readonly Closable[], options: ShutdownOptions = {}): () => void {
  const list: readonly Closable[] = Array.isArray(pools) ? pools : [pools as Closable];
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const timeoutMs = options.timeoutMs ?? 10_000;
  let shuttingDown = false;

  const handler = (signal: NodeJS.Signals): void => {
    const exitCode = 128 + (SIGNAL_NUMBERS[signal] ?? 15);
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
      options.onClosed?.(results);
      if (options.exit !== false) process.exit(exitCode);
    });
  };
  for (const signal of signals) process.on(signal, handler);
  return () => {
    for (const signal of signals) process.off(signal, handler);
  };
}
