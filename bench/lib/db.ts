/**
 * The shapes of the database scenarios, shared by every driver (scenarios/pg.ts, scenarios/mysql.ts):
 *
 * - {@link selectScenario}: `SELECT 1` at 1, 16 and 64 callers over a pool of {@link DB_MAX};
 *   leasepool's `withLease` against the driver pool's check-out/query/release (budget ≥ 0.95x at
 *   every concurrency), plus leasepool without leak detection (budget: detection costs ≤ 5% at 16).
 * - {@link txScenario}: one short transaction (UPDATE one random row of {@link ACCOUNTS}) at 16
 *   callers; leasepool's `withTx` against a hand-written transaction on the driver's pool (≥ 0.95x),
 *   and a check that every counted commit is in the table.
 * - {@link inspectorScenario}: `SELECT 1` in `withLease` at 16 callers without the lease inspector,
 *   with it served and nobody connected (budget ≥ 0.97x), and with one page open (shown).
 * - {@link facadeScenario}: `pool.query('SELECT 1')` through leasepool's drop-in facade against the
 *   driver pool's own `query`, both built from the same options (≥ 0.95x at 16; 1 and 64 shown).
 * - {@link tracingScenario}: `withLease` + SELECT 1 and the `withTx` UPDATE at 16 callers with
 *   OpenTelemetry tracing on (an SDK tracer provider exporting to nowhere) against off (≥ 0.95x).
 *
 * Each driver file supplies what differs: how to reach its server, its pools and statements.
 */
import { runThroughput, type Budget, type ThroughputResult, type VariantDef, type VariantInstance } from './harness';
import type { BenchOptions, Check, Scenario, ScenarioResult, Service } from './scenario';

/** Pool size of every variant of every database scenario. */
export const DB_MAX = 10;
/** Rows of the accounts table the transaction scenarios update. */
export const ACCOUNTS = 1_000;
export const ACCOUNTS_TABLE = 'lp_bench_accounts';
/** An account id in 1..ACCOUNTS. */
export const randomAccount = (): number => 1 + Math.floor(Math.random() * ACCOUNTS);

/** Throughput budget: the leasepool variant keeps at least 95% of its peer's ops/s. */
const LIMIT = 0.95;
/**
 * Length of one timed run (ms, before `--quick` scaling); the warm-up run is as long. Database
 * runs are short and five times as many as `--reps` asks: on a two-core machine shared with the
 * database server one run's throughput wanders by ±10-50% (scheduling, the server's background
 * work, other guests on the host), and the median of many rep-by-rep ratios is what stays put.
 * With 15 ratios the middle half of a run spanned up to 0.2 and identical code (leak detection on
 * against off) came out anywhere in 0.95-1.03; 25 shorter pairs cost a third more time.
 */
const SELECT_RUN_MS = 250;
const TX_RUN_MS = 300;
const REPS_FACTOR = 5;
/**
 * Processes each database scenario runs in, one after the other, sharing its reps (JMH's forks).
 * The median of one process's rep ratios sat still within it but moved between processes: on the
 * same code, mysql-select's leasepool / mysql2 ratio at 16 callers came out at 0.94, 0.97 and 1.00 in
 * three processes in a row, each with 25 reps. Taken over three processes, one process's luck
 * weighs a third.
 */
const DB_FORKS = 3;
/**
 * Reps per `--reps` for the scenarios whose cost the `instructions` scenario also counts (the
 * facades, the inspector): their wall-clock budget is the second opinion, and fewer reps keep the
 * whole `--check` within its time.
 */
const COUNTED_REPS_FACTOR = 3;

export function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

/** The harness with the settings every database scenario uses: one op per clock check, ops/s ratios. */
function measure(
  options: BenchOptions,
  config: {
    concurrencies: readonly number[];
    variants: readonly VariantDef[];
    baseline: string;
    budgets: readonly Budget[];
    runMs: number;
    /** Reps per `--reps` (default REPS_FACTOR): fewer where the budget is also held by an instruction count. */
    repsFactor?: number;
  },
): Promise<ThroughputResult> {
  return runThroughput({
    concurrencies: config.concurrencies,
    variants: config.variants,
    baseline: config.baseline,
    ratioMetric: 'throughput',
    durationMs: config.runMs * options.timeScale,
    warmupMs: config.runMs * options.timeScale,
    checkEvery: 1,
    reps: Math.ceil((options.reps * (config.repsFactor ?? REPS_FACTOR)) / options.forks),
    progress: true,
    budgets: config.budgets,
  });
}

const asResult = (out: ThroughputResult, checks: readonly Check[] = []): ScenarioResult => ({
  tables: out.tables,
  budgets: out.budgets,
  checks,
  results: out.results,
});

/** What a scenario is called and which server it needs. */
export interface DbScenarioInfo {
  readonly name: string;
  readonly title: string;
  readonly service: Service;
}

export interface SelectSpec extends DbScenarioInfo {
  /** A leasepool pool running `withLease(conn => conn.query('SELECT 1'))`; leak detection at its default unless given. */
  leasepool(leakDetectionMs?: number): VariantInstance;
  /**
   * The driver pool's check-out, query, release: the baseline of every budget. Its `pool.query()`
   * is measured in the facade scenario, not here: run in the same process, the driver's
   * callback-style query path changes how V8 optimizes the driver code that both variants of this
   * scenario share, and moved the leasepool / check-out ratios by up to 10% (bench runs on this
   * machine, 2026-11-22).
   */
  readonly peer: VariantDef;
}

export function selectScenario(spec: SelectSpec): Scenario {
  return {
    name: spec.name,
    title: spec.title,
    service: spec.service,
    forks: DB_FORKS,
    async run(options) {
      const concurrencies = [1, 16, 64] as const;
      const budgets: Budget[] = concurrencies.map((at) => ({ variant: 'leasepool', baseline: spec.peer.name, at, metric: 'throughput', limit: LIMIT }));
      budgets.push({ variant: 'leasepool', baseline: 'leasepool-noleak', at: 16, metric: 'throughput', limit: LIMIT, note: 'leak detection costs ≤ 5%' });
      const variants: VariantDef[] = [
        { name: 'leasepool', open: () => spec.leasepool() },
        // At every concurrency, not only at 16 where its budget is: a pool's history (which
        // concurrencies it served before) shows in its throughput, and the two must share one.
        { name: 'leasepool-noleak', open: () => spec.leasepool(0) },
        spec.peer,
      ];
      return asResult(await measure(options, { concurrencies, variants, baseline: spec.peer.name, budgets, runMs: SELECT_RUN_MS }));
    },
  };
}

export interface InspectorSpec extends DbScenarioInfo {
  /**
   * A leasepool pool running `withLease(conn => conn.query('SELECT 1'))`, with its defaults;
   * `inspector`: `'off'` none, `'idle'` the lease inspector served and nobody connected, `'page'`
   * served with one page open (a client fetching `leases.json` at the page's default 1 s poll).
   */
  leasepool(inspector: 'off' | 'idle' | 'page'): VariantInstance;
}

/**
 * The lease inspector's cost: `SELECT 1` in `withLease` at 16 callers, without it, with it served
 * and nobody connected (budget: ≤ 3%, i.e. ≥ 0.97x ops/s), and with one page open (shown).
 */
export function inspectorScenario(spec: InspectorSpec): Scenario {
  return {
    name: spec.name,
    title: spec.title,
    service: spec.service,
    forks: DB_FORKS,
    async run(options) {
      const budgets: Budget[] = [
        { variant: 'leasepool-inspector', baseline: 'leasepool', at: 16, metric: 'throughput', limit: 0.97, note: 'the inspector enabled, nobody connected, costs ≤ 3%' },
      ];
      const variants: VariantDef[] = [
        { name: 'leasepool', open: () => spec.leasepool('off') },
        { name: 'leasepool-inspector', open: () => spec.leasepool('idle') },
        { name: 'leasepool-inspector-page', open: () => spec.leasepool('page') },
      ];
      return asResult(await measure(options, { concurrencies: [16], variants, baseline: 'leasepool', budgets, runMs: SELECT_RUN_MS, repsFactor: COUNTED_REPS_FACTOR }));
    },
  };
}

/** A variant of a transaction scenario: each op is one transaction and calls `committed()` once it committed. */
export interface TxVariantDef {
  readonly name: string;
  open(committed: () => void): VariantInstance;
}

/** A fresh accounts table (ids 1..ACCOUNTS, balance 0) and the connection that made it. */
export interface AccountsTable {
  /** `sum(balance)`: one per commit. */
  total(): Promise<number>;
  /** Drop the table and close the connection (never throws for the drop). */
  dispose(): Promise<void>;
}

export interface TxSpec extends DbScenarioInfo {
  /** Create {@link ACCOUNTS_TABLE} afresh (closing its connection itself if that fails). */
  createAccounts(): Promise<AccountsTable>;
  /** A leasepool pool running `withTx(conn => UPDATE …)`. */
  leasepool(committed: () => void): VariantInstance;
  /** The same transaction written by hand on the driver's pool (check out, BEGIN, UPDATE, COMMIT, ROLLBACK on error, release). */
  readonly peer: TxVariantDef;
}

export function txScenario(spec: TxSpec): Scenario {
  return {
    name: spec.name,
    title: spec.title,
    service: spec.service,
    forks: DB_FORKS,
    run: (options) =>
      withAccounts(spec, (committed) => {
        const counted = (def: TxVariantDef): VariantDef => ({ name: def.name, open: () => def.open(committed) });
        return measure(options, {
          concurrencies: [16],
          variants: [counted({ name: 'leasepool withTx', open: (done) => spec.leasepool(done) }), counted(spec.peer)],
          baseline: spec.peer.name,
          budgets: [{ variant: 'leasepool withTx', baseline: spec.peer.name, at: 16, metric: 'throughput', limit: LIMIT }],
          runMs: TX_RUN_MS,
        });
      }),
  };
}

/**
 * Run `measure` on a fresh accounts table, every commit counted through `committed`; then check
 * that the table holds exactly the commits counted.
 */
async function withAccounts(
  spec: { createAccounts(): Promise<AccountsTable> },
  measure: (committed: () => void) => Promise<ThroughputResult>,
): Promise<ScenarioResult> {
  const accounts = await spec.createAccounts();
  try {
    let commits = 0;
    const out = await measure(() => {
      commits++;
    });
    const total = await accounts.total();
    return asResult(out, [{ label: 'every commit landed once', ok: total === commits, detail: `sum(balance) ${fmt(total)}, commits counted ${fmt(commits)}` }]);
  } finally {
    await accounts.dispose();
  }
}

export interface FacadeSpec extends DbScenarioInfo {
  /** leasepool's drop-in facade, `pool.query('SELECT 1')`. */
  readonly facade: VariantDef;
  /** The driver's own pool built from the same options, `pool.query('SELECT 1')`: the baseline. */
  readonly driver: VariantDef;
}

/** Issue "Drop-in replacements": swapping the import must not cost more than 5% at 16 callers. */
export function facadeScenario(spec: FacadeSpec): Scenario {
  return {
    name: spec.name,
    title: spec.title,
    service: spec.service,
    forks: DB_FORKS,
    async run(options) {
      return asResult(
        await measure(options, {
          concurrencies: [1, 16, 64],
          variants: [spec.facade, spec.driver],
          baseline: spec.driver.name,
          budgets: [{ variant: spec.facade.name, baseline: spec.driver.name, at: 16, metric: 'throughput', limit: LIMIT, note: 'drop-in facade vs the driver pool' }],
          runMs: SELECT_RUN_MS,
          repsFactor: COUNTED_REPS_FACTOR,
        }),
      );
    },
  };
}

export interface TracingSpec extends DbScenarioInfo {
  createAccounts(): Promise<AccountsTable>;
  /** `withLease(conn => conn.query('SELECT 1'))`, traced or not. */
  select(traced: boolean): VariantInstance;
  /** The `withTx` UPDATE of the tx scenario, traced or not. */
  tx(traced: boolean, committed: () => void): VariantInstance;
}

/** One process: the four variants share it, and the scenario adds a fraction of a full run's time. */
export function tracingScenario(spec: TracingSpec): Scenario {
  const budget = (variant: string, baseline: string): Budget => ({ variant, baseline, at: 16, metric: 'throughput', limit: LIMIT, note: 'tracing on vs off' });
  return {
    name: spec.name,
    title: spec.title,
    service: spec.service,
    forks: 1,
    run: (options) =>
      withAccounts(spec, (committed) =>
        measure(
          { ...options, forks: 1 },
          {
            concurrencies: [16],
            variants: [
              { name: 'withLease', open: () => spec.select(false) },
              { name: 'withLease traced', open: () => spec.select(true) },
              { name: 'withTx', open: () => spec.tx(false, committed) },
              { name: 'withTx traced', open: () => spec.tx(true, committed) },
            ],
            baseline: 'withLease',
            budgets: [budget('withLease traced', 'withLease'), budget('withTx traced', 'withTx')],
            runMs: TX_RUN_MS,
          },
        ),
      ),
  };
}
