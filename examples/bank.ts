/**
 * The leasepool demo that `npm start` runs: concurrent bank transfers through a pool, with faults
 * injected on purpose (a throw after the debit, a leaked lease, a transaction past its deadline, a
 * killed backend), a live status line, `/metrics` for Prometheus, and at the end a summary, the leak
 * reports with their stacks, and the check that the total balance did not change.
 *
 * Embedded PGlite by default (nothing to install); `--db pg` / `--db mysql` or `DATABASE_URL` for
 * real servers. `--help` lists every flag.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { redact, serveInspector, serveMetrics, type InspectorServer, type MetricsServer, type PoolOptions } from '../src/index';
import { HELP, parseArgs, UsageError, type BankArgs } from './bank/args';
import { openDb, probe, setupTable, totalBalance, type BankDb } from './bank/db';
import { count, DemoLogger, firstLine, Output } from './bank/output';
import { readCounters, statusLine, summary } from './bank/report';
import { Workload, type FaultKind } from './bank/workload';

const POOL_NAME = 'bank';

/** Exit codes (documented in --help). */
const EXIT = { ok: 0, failed: 1, usage: 2, invariant: 3 } as const;

/** Per-database timings: PGlite is one session, so everything that holds it is kept short. */
function timings(args: BankArgs): {
  leakDetectionMs: number;
  leaseTimeoutMs: number;
  slowTimeoutMs: number;
  connectTimeoutMs: number;
  probeTimeoutMs: number;
  cooldownMs: Record<FaultKind, number>;
} {
  return args.db === 'pglite'
    ? // PGlite starts in ~3 s (more on a busy machine): its "connect" is that start-up.
      // A leaked lease or a slow transaction holds the only session: space them out.
      {
        leakDetectionMs: 500,
        leaseTimeoutMs: 1_000,
        slowTimeoutMs: 300,
        connectTimeoutMs: 60_000,
        probeTimeoutMs: 60_000,
        cooldownMs: { throw: 0, leak: 3_000, slow: 1_000, kill: 0 },
      }
    : {
        leakDetectionMs: 500,
        leaseTimeoutMs: 2_000,
        slowTimeoutMs: 300,
        connectTimeoutMs: 2_000,
        probeTimeoutMs: 3_000,
        cooldownMs: { throw: 0, leak: 2_000, slow: 250, kill: 250 },
      };
}

/** SIGINT/SIGTERM: the first ends the run cleanly (summary included), a second exits at once. */
class StopSignal {
  received: NodeJS.Signals | undefined;
  readonly promise: Promise<void>;
  #resolve!: () => void;
  readonly #onSignal = (signal: NodeJS.Signals): void => {
    if (this.received !== undefined) process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    this.received = signal;
    this.#resolve();
  };

  constructor() {
    this.promise = new Promise<void>((resolve) => {
      this.#resolve = resolve;
    });
    process.on('SIGINT', this.#onSignal);
    process.on('SIGTERM', this.#onSignal);
  }
}

/** One line for stderr: first line only, passwords masked. */
function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return redact(firstLine(text)).trim();
}

async function main(): Promise<number> {
  let args: BankArgs;
  try {
    args = parseArgs(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`bank: ${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  if (args.help) {
    process.stdout.write(HELP);
    return EXIT.ok;
  }

  const stop = new StopSignal();
  const out = new Output();
  const logger = new DemoLogger(out);
  const t = timings(args);
  const rates: Record<FaultKind, number> = { throw: args.failRate, leak: args.leakRate, slow: args.slowRate, kill: args.killRate };

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let server: MetricsServer;
  try {
    server = await serveMetrics({ registry, port: args.metricsPort });
  } catch (err) {
    const inUse = (err as { code?: unknown }).code === 'EADDRINUSE';
    process.stderr.write(`bank: ${oneLine(err)}${inUse ? ' (pick another with --metrics-port, or 0 for any free port)' : ''}\n`);
    return EXIT.failed;
  }

  const options: PoolOptions = {
    name: POOL_NAME,
    max: args.poolMax,
    connectTimeoutMs: t.connectTimeoutMs,
    acquireTimeoutMs: 10_000,
    leakDetectionMs: t.leakDetectionMs,
    // The demo shows every leak with its stack; a production pool samples stacks above 1 000/s.
    leakStacksPerSecond: Infinity,
    leaseTimeoutMs: t.leaseTimeoutMs,
    metrics: { registry },
    logger,
  };
  let db: BankDb | undefined;
  let inspector: InspectorServer | undefined;
  try {
    db = openDb(args, options);
    // The live lease inspector next to /metrics: the demo's leaks and slow transactions show there while they happen.
    inspector = await serveInspector([db.pool], { port: args.inspectorPort }).catch((err: unknown) => {
      const inUse = (err as { code?: unknown }).code === 'EADDRINUSE';
      out.line(`[warning] no lease inspector: ${oneLine(err)}${inUse ? ' (pick another with --inspector-port, or 0 for any free port)' : ''}`);
      return undefined;
    });
    if (db.kind === 'pglite') out.line('starting PGlite (PostgreSQL in WebAssembly, in this process: a few seconds)…');
    const probing = probe(db, t.probeTimeoutMs);
    probing.catch(() => undefined); // awaited below unless a signal comes first
    await Promise.race([probing, stop.promise]);
    if (stop.received === undefined) {
      await probing;
      const pct = (r: number): string => `${+(r * 100).toFixed(2)}%`;
      out.line(`leasepool bank demo: ${db.label}`);
      out.line(
        `  ${count(args.accounts)} accounts × ${count(args.balance)}, ${args.workers} workers, pool max ${args.poolMax}, ${args.durationSeconds} s; ` +
          `faults: throw ${pct(rates.throw)}, leak ${pct(rates.leak)}, slow ${pct(rates.slow)}, kill ${db.backendIdSql === undefined ? 'n/a' : pct(rates.kill)}`,
      );
      out.line(`  leakDetectionMs ${t.leakDetectionMs}, leaseTimeoutMs ${t.leaseTimeoutMs}, slow transaction timeoutMs ${t.slowTimeoutMs}`);
      out.line(`metrics: ${server.url}`);
      if (inspector !== undefined) out.line(`inspector: ${inspector.url}`);
      logger.flush();
      await setupTable(db, args.table, args.accounts, args.balance);
    }
  } catch (err) {
    logger.discard();
    process.stderr.write(`bank: cannot use the database: ${oneLine(err)}\n`);
    await db?.close(1_000).catch(() => undefined);
    await inspector?.close();
    await server.close();
    return EXIT.failed;
  }
  logger.flush();
  if (stop.received !== undefined) {
    out.line(`${stop.received} before the run started: nothing to check`);
    await db.close(2_000).catch(() => undefined);
    await inspector?.close();
    await server.close();
    return EXIT.ok;
  }

  const expectedTotal = BigInt(args.accounts) * BigInt(args.balance);
  const workload = new Workload(
    db,
    { table: args.table, accounts: args.accounts, workers: args.workers, rates, slowTimeoutMs: t.slowTimeoutMs, cooldownMs: t.cooldownMs, retries: 5 },
    out,
  );
  let seconds = 0;
  {
    out.line(`table ${args.table}: ${count(args.accounts)} accounts + suspense account 0, total ${count(expectedTotal)}; running (Ctrl-C ends early)`);
    const startedAt = performance.now();
    const samples: Array<[number, number]> = [[startedAt, 0]];
    let ticking = false;
    const tick = async (): Promise<void> => {
      if (ticking) return;
      ticking = true;
      try {
        const at = performance.now();
        const committed = workload.tally.committed;
        samples.push([at, committed]);
        while (samples.length > 2 && at - (samples[1] as [number, number])[0] >= 1_000) samples.shift();
        const [t0, c0] = samples[0] as [number, number];
        const perSecond = at - t0 > 0 ? ((committed - c0) * 1_000) / (at - t0) : 0;
        const counters = await readCounters(registry, POOL_NAME);
        out.status(statusLine((at - startedAt) / 1_000, perSecond, counters, (db as BankDb).pool.stats()));
      } finally {
        ticking = false;
      }
    };
    const ticker = setInterval(() => void tick(), out.tty ? 250 : 1_000);
    workload.start();
    await Promise.race([delay(args.durationSeconds * 1_000), stop.promise]);
    seconds = (performance.now() - startedAt) / 1_000;
    clearInterval(ticker);
    // A last status line with the final counts (unless one was just printed as a line of its own).
    if (out.tty || performance.now() - (samples[samples.length - 1] as [number, number])[0] > 500) await tick();
    out.endStatus();
    if (stop.received !== undefined) out.line(`${stop.received}: stopping the workers…`);

    // Let the workers finish their transfer in hand, and the pool take back a leaked lease.
    await Promise.race([workload.stop(), delay(15_000)]);
    const leakDeadline = performance.now() + t.leaseTimeoutMs + 2_000;
    while (workload.leakOutstanding && performance.now() < leakDeadline) await delay(50);
  }

  let actualTotal: bigint | undefined;
  let totalError: string | undefined;
  try {
    actualTotal = await totalBalance(db, args.table);
  } catch (err) {
    totalError = oneLine(err);
  }
  await db.close(2_000).catch((err: unknown) => out.line(`[warning] closing the pool: ${oneLine(err)}`));
  const counters = await readCounters(registry, POOL_NAME);
  out.line();
  out.line(
    summary({
      dbLabel: db.label,
      seconds,
      workers: args.workers,
      accounts: args.accounts,
      poolMax: args.poolMax,
      rates,
      killSupported: db.backendIdSql !== undefined,
      slowTimeoutMs: t.slowTimeoutMs,
      leakDetectionMs: t.leakDetectionMs,
      leaseTimeoutMs: t.leaseTimeoutMs,
      tally: workload.tally,
      counters,
      expectedTotal,
      actualTotal,
      totalError,
    }),
  );
  const code = actualTotal === expectedTotal ? EXIT.ok : EXIT.invariant;

  if (args.serve && stop.received === undefined) {
    out.line(`still serving ${server.url}${inspector === undefined ? '' : ` and ${inspector.url}`} (--serve): Ctrl-C to exit`);
    await stop.promise;
  }
  await inspector?.close();
  await server.close();
  return code;
}

main().then(
  (code) => {
    // Exit explicitly once stdout is flushed: nothing (a driver socket, PGlite) may keep the demo alive.
    process.stdout.write('', () => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`bank: ${oneLine(err)}\n`);
    process.exit(EXIT.failed);
  },
);
