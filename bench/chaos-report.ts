/**
 * `npm run chaos:report`: run every chaos scenario (the same code as test/chaos/) on PostgreSQL
 * and MariaDB, plus the 1,000,000-lease soak on the in-memory adapter, and print one table.
 *
 *   npm run chaos:report                  every scenario
 *   npm run chaos:report -- --only kill   scenarios whose name contains "kill"
 *   npm run chaos:report -- --json        also print the raw reports as JSON
 *   npm run chaos:report -- --markdown    print the table as Markdown (for the README)
 *   npm run chaos:report -- --only torture  the torture test alone (TORTURE_SEEDS, TORTURE_MS, SEED as in jest)
 *
 * Exit code 1 if any scenario broke a promise (the list is printed under the table).
 * Reads PG_URL / MYSQL_URL like the tests; the restart scenario starts private servers
 * (see test/chaos/scenarios/private-server.ts), the failover scenario a private primary + standby
 * per database (test/cluster/replication.ts). Run with --expose-gc (the npm script does).
 */
import { problems, DB_SCENARIOS, type ScenarioReport } from '../test/chaos/scenarios/scenarios';
import { TARGETS } from '../test/chaos/scenarios/targets';
import { soak, type SoakReport } from '../test/chaos/scenarios/soak';
import { describeFailures, torture, type TortureSummary } from '../test/chaos/scenarios/torture';
import { failoverProblems, runFailover, type FailoverReport } from '../test/cluster/failover-scenario';

interface Row {
  readonly cells: readonly string[];
}

const HEADERS = [
  'scenario',
  'database',
  'attempted',
  'committed',
  'rolled back',
  'refused before BEGIN',
  'outcome unknown',
  'unclear errors',
  'returned in tx',
  'recovery after fault',
  'balance invariant held',
];

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

function rowOf(r: ScenarioReport): Row {
  const s = r.summary;
  const bad = problems(r);
  return {
    cells: [
      r.scenario,
      r.database,
      fmt(s.attempted),
      fmt(s.committed),
      fmt(s.rolled_back),
      fmt(s.not_started),
      s.unknown === 0 ? '0' : `${fmt(s.unknown)} (${r.verdict.unknownCommitted} committed)`,
      fmt(s.unclear),
      `${r.returnedInTransaction + r.probedInTransaction} of ${fmt(r.returned)}`,
      r.recoveryMs === undefined ? 'n/a' : `${Math.round(r.recoveryMs)} ms`,
      r.verdict.invariantHeld && bad.length === 0 ? 'yes' : 'NO',
    ],
  };
}

/** The cluster failover (test/cluster/failover-scenario.ts): private primary + standby, primary crashed, standby promoted. */
function failoverRow(r: FailoverReport): Row {
  const s = r.summary;
  const lost = r.verdict.lostCommits.length;
  return {
    cells: [
      `failover (${r.synchronous ? 'sync' : 'async'} replication)`,
      r.database,
      fmt(s.attempted),
      lost === 0 ? fmt(s.committed) : `${fmt(s.committed)} (${fmt(lost)} lost: async)`,
      fmt(s.rolled_back),
      fmt(s.not_started),
      s.unknown === 0 ? '0' : `${fmt(s.unknown)} (${r.verdict.unknownCommitted} committed)`,
      fmt(s.unclear),
      'n/a',
      `${Math.round(r.resumedMs)} ms (writes on the new primary)`,
      r.verdict.invariantHeld && failoverProblems(r).length === 0 ? 'yes' : 'NO',
    ],
  };
}

function soakRow(r: SoakReport): Row {
  return {
    cells: [
      `soak (${fmt(r.leases)} leases)`,
      'in-memory',
      fmt(r.leases),
      `${fmt(r.leases - r.thrown)} (completed)`,
      `${fmt(r.thrown)} (body threw)`,
      '0',
      '0',
      fmt(r.unexpected),
      `${r.returnedInTransaction} of ${fmt(r.returned)}`,
      'n/a',
      `n/a (heap ${r.heapBeforeMiB} → ${r.heapAfterMiB} MiB)`,
    ],
  };
}

function tortureRow(r: TortureSummary): Row {
  const sum = (f: (run: TortureSummary['runs'][number]) => number): number => r.runs.reduce((n, run) => n + f(run), 0);
  const seeds = r.seeds.length === 0 ? 'none' : r.seeds.length === 1 ? `${r.seeds[0]}` : `${r.seeds[0]}-${r.seeds[r.seeds.length - 1]}`;
  return {
    cells: [
      `torture (seeds ${seeds})`,
      r.database,
      fmt(sum((run) => run.attempted)),
      fmt(sum((run) => run.committed)),
      fmt(sum((run) => run.rolledBack)),
      'n/a',
      fmt(sum((run) => run.unknown)),
      'n/a',
      'n/a',
      'n/a',
      r.invariantHeld ? `yes (${r.seeds.length} seeds)` : `NO (failing seeds ${r.failingSeeds.join(', ')})`,
    ],
  };
}

function renderText(rows: readonly Row[]): string {
  const all = [HEADERS, ...rows.map((r) => r.cells)];
  const widths = HEADERS.map((_, i) => Math.max(...all.map((cells) => (cells[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(HEADERS), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map((r) => line(r.cells))].join('\n');
}

function renderMarkdown(rows: readonly Row[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(HEADERS), line(HEADERS.map((_, i) => (i < 2 ? '---' : '---:'))), ...rows.map((r) => line(r.cells))].join('\n');
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const onlyAt = args.indexOf('--only');
  const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined;
  const json = args.includes('--json');
  const markdown = args.includes('--markdown');
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function') {
    process.stderr.write('warning: run with --expose-gc (npm run chaos:report does): heap figures need global.gc()\n');
  }
  const rows: Row[] = [];
  const failures: string[] = [];
  const reports: unknown[] = [];
  const started = performance.now();
  for (const scenario of DB_SCENARIOS) {
    if (only !== undefined && !scenario.name.includes(only)) continue;
    for (const target of TARGETS) {
      process.stderr.write(`running ${scenario.name} on ${target.name} …\n`);
      try {
        const report = await scenario.run(target);
        reports.push(report);
        rows.push(rowOf(report));
        for (const p of problems(report)) failures.push(`${scenario.name} / ${target.name}: ${p}`);
      } catch (err) {
        failures.push(`${scenario.name} / ${target.name}: threw ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      }
    }
  }
  if (only === undefined || 'torture'.includes(only)) {
    for (const target of TARGETS) {
      process.stderr.write(`running torture on ${target.name} …\n`);
      try {
        const summary = await torture(target);
        reports.push(summary);
        rows.push(tortureRow(summary));
        for (const f of describeFailures(summary)) failures.push(`torture / ${target.name}: ${f}`);
      } catch (err) {
        failures.push(`torture / ${target.name}: threw ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      }
    }
  }
  if (only === undefined || 'failover'.includes(only)) {
    for (const database of ['postgres', 'mariadb'] as const) {
      process.stderr.write(`running failover on ${database} (private primary + standby) …\n`);
      try {
        const report = await runFailover(database);
        reports.push(report);
        rows.push(failoverRow(report));
        for (const p of failoverProblems(report)) failures.push(`failover / ${database}: ${p}`);
      } catch (err) {
        failures.push(`failover / ${database}: threw ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      }
    }
  }
  if (only === undefined || 'soak'.includes(only)) {
    process.stderr.write('running soak on the in-memory adapter …\n');
    const report = await soak();
    reports.push(report);
    rows.push(soakRow(report));
    for (const p of report.issues) failures.push(`soak: ${p}`);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  console.log(`leasepool chaos report — node ${process.version}, ${seconds} s\n`);
  console.log(markdown ? renderMarkdown(rows) : renderText(rows));
  console.log('');
  console.log('returned in tx = connections handed back to the pool not idle (driver status at return) plus idle');
  console.log('connections found inside a transaction when asked the server at the end; "of N" = connections returned.');
  if (json) console.log(JSON.stringify(reports, null, 2));
  if (failures.length > 0) {
    console.log(`\n${failures.length} problem(s):`);
    for (const f of failures) console.log(`  - ${f}`);
    return 1;
  }
  console.log('\nevery scenario held: no transfer half applied, no connection returned in a transaction.');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
