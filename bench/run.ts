/**
 * leasepool benchmarks.
 *
 *   npm run bench                       every scenario, 5 reps, tables + bench/results/<scenario>.json
 *   npm run bench -- --check            exit 1 if any budget is missed (or a database is unreachable)
 *   npm run bench -- --only pg          scenarios whose name contains "pg"
 *   npm run bench -- --reps 7           repetitions per variant (medians over them)
 *   npm run bench -- --quick            smoke run: 2 reps, short runs (numbers are rough)
 *   npm run bench -- --source           run leasepool from its TypeScript sources (through tsx)
 *                                       instead of the tsc build it ships as (see lib/subject.ts)
 *
 * Each scenario runs in a process of its own (a fresh V8: code the scenarios share — leasepool's
 * core, driven by pg in one and mysql2 in another — is not left polymorphic by the ones before,
 * which no single-driver application would see). Within a scenario the variants (leasepool and its
 * peers) run interleaved in that one process over the repetitions; budgets are rep-by-rep ratios
 * declared with each scenario. A scenario that declares `forks` (the database ones: 3) runs in that
 * many processes one after the other, each with its share of the reps, and its budgets are taken
 * over the reps of all of them (each process's tables are printed, then the merged ones; results
 * go to bench/results/<scenario>.<process>.json). Database scenarios
 * read PG_URL (default postgres://postgres@127.0.0.1:5432/test) and MYSQL_URL (default
 * mysql://root@127.0.0.1:3306/test); an unreachable database skips its scenarios, except under
 * `--check` where it is a failure. Needs `--expose-gc` (the npm script passes it).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { redact } from '../src/redact';
import { collect, evaluateBudget, mergeForks, resultTable, type BudgetResult, type VariantResult } from './lib/harness';
import type { BenchOptions, Scenario, ScenarioResult } from './lib/scenario';
import { cycle } from './scenarios/cycle';
import { mysqlFacade, mysqlSelect, mysqlTx } from './scenarios/mysql';
import { pgFacade, pgInspector, pgSelect, pgTracing, pgTx } from './scenarios/pg';
import { soak } from './scenarios/soak';
import { mysqlOverload, pgOverload } from './scenarios/overload';
import { mysqlSpike, pgSpike } from './scenarios/spike';
import { instructions } from './scenarios/instructions';
import { mysqlOutage, pgOutage } from './scenarios/outage';
import { buildSubject, subjectEnv } from './lib/subject';
import { writeReadmeTable } from './lib/readme';

// The write-heavy transaction scenarios last: after tens of thousands of commits a server goes on
// flushing and purging for seconds, on the same two cores as the scenario that runs next.
const SCENARIOS: readonly Scenario[] = [cycle, soak, instructions, pgSelect, pgInspector, pgFacade, mysqlSelect, mysqlFacade, pgOverload, mysqlOverload, pgSpike, mysqlSpike, pgOutage, mysqlOutage, pgTracing, pgTx, mysqlTx];

interface Cli {
  readonly check: boolean;
  readonly only: string | undefined;
  readonly reps: number;
  readonly quick: boolean;
  readonly source: boolean;
  /** Internal: run exactly this scenario here and write what the parent needs to `report`. */
  readonly scenario: string | undefined;
  readonly report: string | undefined;
  /** `--report`: regenerate the results table of bench/README.md from bench/results/ and stop. */
  readonly readme: boolean;
  /** Internal: this is process `fork` of `forks` running the scenario. */
  readonly fork: number;
  readonly forks: number;
}

/** What a scenario's process tells the parent. */
interface Report {
  readonly summary: string[];
  readonly failures: string[];
  readonly errors: string[];
  evaluated: number;
  /** The budgets as this process measured them, and what it measured (for merging processes). */
  readonly budgets?: BudgetResult[];
  readonly results?: readonly VariantResult[];
}

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: npm run bench [-- --check] [--only <scenario substring>] [--reps N] [--quick] [--source]\n`);
  process.exit(2);
}

function parseArgs(argv: readonly string[]): Cli {
  let check = false;
  let only: string | undefined;
  let reps: number | undefined;
  let quick = false;
  let source = false;
  let scenario: string | undefined;
  let report: string | undefined;
  let readme = false;
  let fork = 1;
  let forks = 1;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--check') check = true;
    else if (arg === '--scenario') scenario = argv[++i];
    else if (arg === '--child-report') report = argv[++i];
    else if (arg === '--report') readme = true;
    else if (arg === '--fork') [fork, forks] = (argv[++i] ?? '1/1').split('/').map(Number) as [number, number];
    else if (arg === '--quick') quick = true;
    else if (arg === '--source') source = true;
    else if (arg === '--only') {
      only = argv[++i];
      if (only === undefined || only === '') usage('--only needs a scenario name (substring)');
    } else if (arg === '--reps') {
      const value = Number(argv[++i]);
      if (!Number.isInteger(value) || value < 1) usage('--reps needs an integer >= 1');
      reps = value;
    } else if (arg === '--help' || arg === '-h') usage('leasepool benchmarks');
    else usage(`unknown argument ${JSON.stringify(arg)}`);
  }
  return { check, only, reps: reps ?? (quick ? 2 : 5), quick, source, scenario, report, readme, fork, forks };
}

async function main(): Promise<number> {
  const cli = parseArgs(process.argv.slice(2));
  if (cli.scenario !== undefined) return runHere(cli);
  if (cli.readme) {
    console.log(writeReadmeTable(__dirname, SCENARIOS.map((s) => s.name)));
    return 0;
  }
  const selected = SCENARIOS.filter((s) => cli.only === undefined || s.name.includes(cli.only));
  if (selected.length === 0) usage(`no scenario matches ${JSON.stringify(cli.only)} (have: ${SCENARIOS.map((s) => s.name).join(', ')})`);

  const subject = buildSubject(cli.source);
  const cpus = os.cpus();
  console.log(
    `leasepool bench — node ${process.version}, ${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, reps ${cli.reps}${cli.quick ? ' (quick)' : ''}${cli.check ? ', --check' : ''}`,
  );
  console.log(`leasepool under test: ${subject}; each scenario in a process of its own`);
  const started = performance.now();
  const total: Report = { summary: [], failures: [], errors: [], evaluated: 0 };
  const reportFile = path.join(os.tmpdir(), `leasepool-bench-${process.pid}.json`);
  for (const scenario of selected) {
    const forks = cli.quick ? 1 : (scenario.forks ?? 1);
    const reports: Report[] = [];
    for (let fork = 1; fork <= forks; fork++) {
      const args = ['--expose-gc', '--import', 'tsx', __filename, '--scenario', scenario.name, '--child-report', reportFile, '--reps', String(cli.reps)];
      args.push('--fork', `${fork}/${forks}`);
      if (cli.check) args.push('--check');
      if (cli.quick) args.push('--quick');
      if (cli.source) args.push('--source');
      rmSync(reportFile, { force: true });
      const child = spawnSync(process.execPath, args, { stdio: 'inherit', env: { ...process.env, ...subjectEnv(cli.source) } });
      let report: Report | undefined;
      try {
        report = JSON.parse(readFileSync(reportFile, 'utf8')) as Report;
      } catch {
        report = undefined;
      }
      if (report === undefined) {
        const which = forks > 1 ? ` (process ${fork} of ${forks})` : '';
        total.errors.push(`${scenario.name}${which}: its process ended without a report (exit ${String(child.status ?? child.signal)})`);
        continue;
      }
      reports.push(report);
    }
    const report = forks > 1 ? mergeReports(scenario.name, reports) : reports[0];
    if (report === undefined) continue;
    if (forks > 1) writeMerged(scenario, report, cli.quick);
    total.summary.push(...report.summary);
    total.failures.push(...report.failures);
    total.errors.push(...report.errors);
    total.evaluated += report.evaluated;
  }
  rmSync(reportFile, { force: true });
  console.log(`\n=== summary (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  return conclude(total, cli.check);
}

/**
 * One report for a scenario that ran in several processes: its budgets taken over the reps of all
 * of them (`mergeForks`), printed with the tables of the merged medians; the other checks and the
 * errors of every process as they are.
 */
function mergeReports(name: string, reports: readonly Report[]): Report | undefined {
  const first = reports[0];
  if (first === undefined) return undefined;
  // A line every process reported alike (a database that is down) is said once.
  const summary = new Set<string>();
  const failures = new Set<string>();
  const errors = [...new Set(reports.flatMap((r) => r.errors))];
  let evaluated = 0;
  for (const r of reports) {
    // Each process's own budget lines are its part only: the merged ones below replace them.
    const own = new Set((r.budgets ?? []).map((b) => `${name}: ${b.line}`));
    for (const line of r.summary) if (!own.has(line)) summary.add(line);
    for (const line of r.failures) if (!own.has(line)) failures.add(line);
    evaluated += r.evaluated - (r.budgets?.length ?? 0);
  }
  const results = mergeForks(reports.map((r) => r.results ?? []));
  const budgets = (first.budgets ?? []).map((b) => evaluateBudget(b, results));
  const reps = results[0]?.samples.length ?? 0;
  const baseline = budgets[0];
  if (baseline !== undefined) {
    console.log(`\n=== ${name}: the ${reports.length} processes together`);
    for (const c of [...new Set(results.map((r) => r.concurrency))]) {
      console.log(`\n${resultTable(results, baseline.baseline, baseline.metric, c, `medians of ${reps} reps in ${reports.length} processes`)}`);
    }
    console.log('');
  }
  for (const b of budgets) {
    console.log(`  ${b.line}`);
    summary.add(`${name}: ${b.line}`);
    if (!b.ok) failures.add(`${name}: ${b.line}`);
  }
  evaluated += budgets.length;
  return { summary: [...summary], failures: [...failures], errors, evaluated };
}

/** bench/results/<scenario>.json for a scenario run in several processes: its merged budgets (what `--report` reads). */
function writeMerged(scenario: Scenario, report: Report, quick: boolean): void {
  const prefix = `${scenario.name}: `;
  const failed = new Set(report.failures);
  const budgets = report.summary.filter((l) => / budget [≤≥]/.test(l)).map((l) => ({ line: l.slice(prefix.length), ok: !failed.has(l) }));
  const checks = report.summary
    .filter((l) => !/ budget [≤≥]/.test(l) && / (OK|MISSED)$/.test(l))
    .map((l) => ({ label: l.slice(prefix.length).replace(/ (OK|MISSED)$/, ''), detail: '', ok: !failed.has(l) }));
  const json = { scenario: scenario.name, title: scenario.title, date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, quick, merged: true, budgets, checks };
  writeFileSync(path.join(__dirname, 'results', `${scenario.name}.json`), `${JSON.stringify(json, null, 2)}\n`);
}

/** Print the summary lines and the verdict; the exit code. */
function conclude(report: Report, check: boolean): number {
  for (const line of report.summary) console.log(`  ${line}`);
  for (const e of report.errors) console.log(`  ${e}`);
  if (report.failures.length > 0) {
    console.log(`\n${report.failures.length} budget(s)/check(s) missed or failed${check ? '' : ' (not an error without --check)'}:`);
    for (const f of report.failures) console.log(`  ${f}`);
  } else if (report.errors.length === 0) {
    console.log(report.evaluated > 0 ? '\nall budgets met' : '\nno budget evaluated');
  }
  return report.errors.length > 0 || (check && report.failures.length > 0) ? 1 : 0;
}

/** One scenario, in this process (the child `main` spawns); what the parent needs goes to `--report`. */
async function runHere(cli: Cli): Promise<number> {
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function') {
    process.stderr.write('warning: run with --expose-gc (npm run bench does): heap figures and the soak need global.gc()\n');
  }
  const options: BenchOptions = { reps: cli.reps, forks: cli.forks, timeScale: cli.quick ? 0.25 : 1, quick: cli.quick, check: cli.check };
  const selected = SCENARIOS.filter((s) => s.name === cli.scenario);
  if (selected.length === 0) usage(`no scenario named ${JSON.stringify(cli.scenario)}`);
  const subject = buildSubject(cli.source);
  const cpus = os.cpus();
  const resultsDir = path.join(__dirname, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const failures: string[] = [];
  /** Scenarios that threw: an error with or without --check. */
  const errors: string[] = [];
  const summary: string[] = [];
  let evaluated = 0;
  const budgets: BudgetResult[] = [];
  let results: readonly VariantResult[] = [];

  for (const scenario of selected) {
    const part = cli.forks > 1 ? ` (process ${cli.fork} of ${cli.forks})` : '';
    console.log(`\n=== ${scenario.name}: ${scenario.title}${part}`);
    if (scenario.service !== undefined) {
      const service = scenario.service;
      try {
        await service.probe();
      } catch (err) {
        const why = redact(err instanceof Error ? err.message : String(err));
        const message = `${service.name} at ${service.target} is unreachable (${why})`;
        if (cli.check) {
          console.log(`FAILED: ${message}; --check needs it`);
          failures.push(`${scenario.name}: ${message}`);
        } else {
          console.log(`skipped: ${message}`);
          summary.push(`${scenario.name}: skipped (${service.name} unreachable)`);
        }
        continue;
      }
    }
    const t0 = performance.now();
    let result: ScenarioResult;
    try {
      result = await scenario.run(options);
    } catch (err) {
      const why = redact(err instanceof Error ? (err.stack ?? err.message) : String(err));
      console.log(`FAILED: the scenario threw: ${why}`);
      errors.push(`${scenario.name}: threw ${redact(err instanceof Error ? err.message : String(err))}`);
      continue;
    }
    collect(2);
    for (const t of result.tables) console.log(`\n${t}`);
    if (result.budgets.length > 0 || result.checks.length > 0) console.log('');
    evaluated += result.budgets.length + result.checks.length;
    budgets.push(...result.budgets);
    results = result.results ?? [];
    for (const b of result.budgets) {
      console.log(`  ${b.line}${part === '' ? '' : ' (this process)'}`);
      summary.push(`${scenario.name}: ${b.line}`);
      if (!b.ok) failures.push(`${scenario.name}: ${b.line}`);
    }
    for (const c of result.checks) {
      const line = `${c.label}: ${c.detail} ${c.ok ? 'OK' : 'MISSED'}`;
      console.log(`  ${line}`);
      summary.push(`${scenario.name}: ${line}`);
      if (!c.ok) failures.push(`${scenario.name}: ${line}`);
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(`  (${seconds.toFixed(1)} s)`);
    const file = path.join(resultsDir, `${scenario.name}${cli.forks > 1 ? `.${cli.fork}` : ''}.json`);
    const json = {
      scenario: scenario.name,
      title: scenario.title,
      date: new Date().toISOString(),
      node: process.version,
      cpus: cpus.length,
      cpuModel: cpus[0]?.model.trim(),
      reps: options.reps,
      quick: options.quick,
      subject,
      seconds,
      results: result.results ?? [],
      budgets: result.budgets,
      checks: result.checks,
      ...(result.extra ?? {}),
    };
    writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  }


  const report: Report = { summary, failures, errors, evaluated, budgets, results };
  if (cli.report !== undefined) writeFileSync(cli.report, JSON.stringify(report));
  else conclude(report, cli.check);
  return errors.length > 0 || (cli.check && failures.length > 0) ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${redact(err instanceof Error ? (err.stack ?? err.message) : String(err))}\n`);
    process.exitCode = 1;
  },
);
