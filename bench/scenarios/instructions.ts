/**
 * `instructions`: the client's work per operation as a count, not a time, so that its budget does
 * not flap on a shared machine. Each variant runs in a child process of its own under
 * `valgrind --tool=callgrind` (one caller unless a pair names more: a warm-up, then a fixed number
 * of ops). The child calls two node builtins that nothing measured calls (`os.loadavg()` before the counted ops,
 * `os.uptime()` after them) and callgrind dumps its counters on entering each (`--dump-before`):
 * the second dump holds exactly the instructions of the counted ops, start-up and warm-up excluded.
 * `--single-threaded` keeps V8's compiler and GC on the main thread, and `--predictable` with
 * `--predictable-gc-schedule` makes when they run depend on the program, not on the clock (without
 * them, how much background work ran while the client waited for the server changed a count by up
 * to a third). The hot code is optimized before counting: V8 runs with a smaller interrupt budget
 * (tiering up after an eighth of the bytecode run it needs by default), the warm-up is 3,000
 * statements or 20,000 cycles, and one more round of exactly the counted ops runs before the count
 * starts. What is counted is split three ways (see `splitCount`): V8 compiling, garbage
 * collection, and the rest, the client's work. The budgets hold the work: a compile or a
 * Mark-Compact that falls inside the counted ops is not each op's work, and whether one falls
 * inside decided most of some counts. The other two are shown per op. Run one at a time per
 * server (see `Pair.lane`), two runs of a database child agree within about a percent; the
 * in-memory cycle's agree to the instruction.
 *
 * Budgets (`--check`): leasepool `withLease` + SELECT 1 ≤ 1.05x the driver pool's
 * connect/query/release work per statement (pg, mysql2); the drop-ins' `pool.query` at 16 callers
 * ≤ 1.05x the driver pool's (pg, mysql2); the lease inspector served ≤ 1.03x without it; the
 * in-memory `withLease` cycle ≤ generic-pool's acquire/release. The peers run as an application
 * without leasepool runs them. The same peers in a process with an AsyncLocalStorage store are
 * shown too (not under `--check`): on Node < 22 leasepool's ambient scope turns on the promise
 * hooks such a store costs every promise, and that share of leasepool's count is the platform's,
 * not the pool's. Needs valgrind and its callgrind_annotate (/usr/bin); without them the scenario
 * fails under `--check` and is skipped otherwise.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fmtInt, renderTable, type BudgetResult } from '../lib/harness';
import type { BenchOptions, Check, Scenario, ScenarioResult } from '../lib/scenario';

const VALGRIND = '/usr/bin/valgrind';
const ANNOTATE = '/usr/bin/callgrind_annotate';
const PG_URL = process.env['PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const MYSQL_URL = process.env['MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/test';

interface Pair {
  readonly leasepool: string;
  readonly peer: string;
  /** Budget on the ratio of work; undefined: shown for information. */
  readonly limit: number | undefined;
  readonly warmup: number;
  readonly ops: number;
  readonly what: string;
  /** Concurrent callers in the child (default 1). */
  readonly callers?: number;
  /**
   * The server its children talk to. Children of one server run one at a time (two at once on the
   * same server changed each other's counts by up to a third: how the replies arrive changes what
   * the client does); a PostgreSQL child and a MariaDB child may run side by side (their counts
   * stayed within 0.5% of the counts alone). The in-memory cycle runs in the MariaDB lane.
   */
  readonly lane: 'pg' | 'mysql';
}

const PAIRS: readonly Pair[] = [
  { leasepool: 'pg withLease', peer: 'pg.Pool connect', limit: 1.05, warmup: 3_000, ops: 1_000, what: 'SELECT 1 per statement, PostgreSQL', lane: 'pg' },
  {
    leasepool: 'pg withLease',
    peer: 'pg.Pool connect, ALS on',
    limit: undefined,
    warmup: 3_000,
    ops: 1_000,
    what: 'the same, pg.Pool in a process with an AsyncLocalStorage store (request context, OpenTelemetry)',
    lane: 'pg',
  },
  { leasepool: 'mysql withLease', peer: 'mysql2 getConnection', limit: 1.05, warmup: 3_000, ops: 1_000, what: 'SELECT 1 per statement, MariaDB', lane: 'mysql' },
  { leasepool: 'pg facade query', peer: 'pg.Pool query', limit: 1.05, warmup: 3_000, ops: 1_000, callers: 16, what: "pool.query('SELECT 1'), 16 callers, PostgreSQL", lane: 'pg' },
  { leasepool: 'mysql facade query', peer: 'mysql2 pool.query', limit: 1.05, warmup: 3_000, ops: 1_000, callers: 16, what: "pool.query('SELECT 1'), 16 callers, MariaDB", lane: 'mysql' },
  { leasepool: 'pg withLease inspector', peer: 'pg withLease', limit: 1.03, warmup: 3_000, ops: 1_000, callers: 16, what: 'the lease inspector served (nobody connected) vs not, SELECT 1, 16 callers, PostgreSQL', lane: 'pg' },
  { leasepool: 'cycle withLease', peer: 'cycle generic-pool', limit: 1, warmup: 20_000, ops: 20_000, what: 'in-memory acquire → release', lane: 'mysql' },
  {
    leasepool: 'cycle withLease',
    peer: 'cycle generic-pool, ALS on',
    limit: undefined,
    warmup: 20_000,
    ops: 20_000,
    what: 'the same, generic-pool in a process with an AsyncLocalStorage store (the promise hooks leasepool turns on)',
    lane: 'mysql',
  },
];

/** A child run's counted instructions, split by what ran them. */
interface Count {
  readonly total: number;
  /** V8 compiling (lazy, baseline, optimizing): a function's first uses, not each op's work. */
  readonly jit: number;
  /** Garbage collection, run from V8's GC tasks or an allocation's slow path. */
  readonly gc: number;
  /** The rest: the client's own work, the budgeted count. */
  readonly work: number;
}

/**
 * The roots, as callgrind names them, of what is counted apart from the client's work. None of
 * them calls another, so their inclusive counts add up without counting anything twice. Whether
 * a Mark-Compact falls inside the counted ops, and when compiles land, depends on where the
 * window falls, not on each op's work.
 */
const JIT_ROOTS = /v8::internal::Runtime_(CompileOptimized|CompileOptimizedOSR|CompileLazy|CompileBaseline|InstallBaselineCode)\(/;
const GC_ROOTS =
  /v8::internal::(Runtime_AllocateInYoungGeneration|Runtime_AllocateInOldGeneration|IncrementalMarkingJob::Task::RunInternal|MinorGCJob::Task::RunInternal|ScavengeJob::Task::RunInternal|MemoryReducer::TimerTask::RunInternal)\(/;

/** Total, JIT and GC instructions of a callgrind dump (`callgrind_annotate --inclusive=yes`). */
function splitCount(dump: string): Promise<Count> {
  return new Promise((resolve, reject) => {
    execFile(ANNOTATE, ['--inclusive=yes', '--threshold=100', dump], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => {
      if (err) return reject(new Error(`callgrind_annotate failed: ${err.message}`));
      let total = 0;
      let jit = 0;
      let gc = 0;
      for (const line of stdout.split('\n')) {
        const m = /^\s*([\d,]+)\s/.exec(line);
        if (m === null) continue;
        const n = Number((m[1] as string).replaceAll(',', ''));
        if (line.includes('PROGRAM TOTALS')) total = n;
        else if (JIT_ROOTS.test(line)) jit += n;
        else if (GC_ROOTS.test(line)) gc += n;
      }
      if (total === 0) return reject(new Error(`callgrind_annotate: no total in ${dump}`));
      resolve({ total, jit, gc, work: total - jit - gc });
    });
  });
}

/** Instructions of the counted ops of one child run. */
function count(variant: string, warmup: number, ops: number, callers = 1): Promise<Count> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lp-bench-cg-'));
  const build = process.env['LEASEPOOL_BENCH_BUILD'];
  const compiled = build === undefined ? undefined : path.join(build, 'bench', 'lib', 'instructions-child.js');
  const child = compiled !== undefined && existsSync(compiled) ? [compiled] : ['--import', 'tsx', path.join(__dirname, '..', 'lib', 'instructions-child.ts')];
  const args = [
    '--tool=callgrind',
    `--callgrind-out-file=${path.join(dir, 'cg.out')}`,
    '--dump-before=node::os::GetLoadAvg*',
    '--dump-before=node::os::GetUptime*',
    process.execPath,
    '--single-threaded',
    '--predictable',
    '--predictable-gc-schedule',
    // V8 optimizes a function after a budget of bytecode run in it: at the default, a small
    // function called once per op (withLease itself) was still being compiled after the warm-up.
    '--interrupt-budget=8192',
    ...child,
    variant,
    String(warmup),
    String(ops),
    PG_URL,
    MYSQL_URL,
    String(callers),
  ];
  return new Promise<string>((resolve, reject) => {
    execFile(VALGRIND, args, { timeout: 300_000, maxBuffer: 16 * 1024 * 1024, cwd: path.join(__dirname, '..', '..') }, (err, _stdout, stderr) => {
      if (err) return reject(new Error(`callgrind run of ${variant} failed: ${err.message}\n${stderr.split('\n').slice(-8).join('\n')}`));
      // Dumps: .1 up to the first marker (start-up, warm-up), .2 the counted ops, then the rest.
      const files = readdirSync(dir);
      if (!files.includes('cg.out.2')) return reject(new Error(`callgrind run of ${variant}: no dump at the markers (have ${files.join(', ')})`));
      resolve(path.join(dir, 'cg.out.2'));
    });
  })
    .then(splitCount)
    .finally(() => rmSync(dir, { recursive: true, force: true }));
}

export const instructions: Scenario = {
  name: 'instructions',
  title: 'Client instructions per op under callgrind: withLease + SELECT 1 vs the driver pools, the cycle vs generic-pool',
  service: {
    name: 'valgrind',
    target: VALGRIND,
    probe: async () => {
      if (!existsSync(VALGRIND) || !existsSync(ANNOTATE)) throw new Error('not installed');
    },
  },
  async run(options: BenchOptions): Promise<ScenarioResult> {
    const scale = options.quick ? 0.5 : 1;
    const rows: string[][] = [];
    const budgets: BudgetResult[] = [];
    const checks: Check[] = [];
    const perOp: Record<string, Count> = {};
    // `--check` counts the budgeted pairs only (the shown ones add a child per lane to its time).
    const pairs = options.check ? PAIRS.filter((p) => p.limit !== undefined) : PAIRS;
    // A variant that two pairs share (same warm-up, ops and callers) is counted once.
    const counted = new Map<string, Promise<Count>>();
    const once = (variant: string, warmup: number, ops: number, callers: number | undefined): Promise<Count> => {
      const key = `${variant}|${warmup}|${ops}|${callers ?? 1}`;
      let n = counted.get(key);
      if (n === undefined) counted.set(key, (n = count(variant, warmup, ops, callers)));
      return n;
    };
    // Two lanes side by side, each running its children one at a time (see Pair.lane).
    const lane = async (name: Pair['lane']): Promise<void> => {
      for (const pair of pairs) {
        if (pair.lane !== name) continue;
        const ops = Math.round(pair.ops * scale);
        await once(pair.leasepool, pair.warmup, ops, pair.callers);
        await once(pair.peer, pair.warmup, ops, pair.callers);
        process.stderr.write('.');
      }
    };
    await Promise.all([lane('pg'), lane('mysql')]);
    const perOpOf = (c: Count, ops: number): Count => ({ total: c.total / ops, jit: c.jit / ops, gc: c.gc / ops, work: c.work / ops });
    const cell = (c: Count): string => `${fmtInt(c.work)} (${fmtInt(c.total)} · ${fmtInt(c.jit)} · ${fmtInt(c.gc)})`;
    for (const pair of pairs) {
      const ops = Math.round(pair.ops * scale);
      const [lpCount, peerCount] = await Promise.all([once(pair.leasepool, pair.warmup, ops, pair.callers), once(pair.peer, pair.warmup, ops, pair.callers)]);
      const lp = perOpOf(lpCount, ops);
      const peer = perOpOf(peerCount, ops);
      perOp[pair.leasepool] = lp;
      perOp[pair.peer] = peer;
      const ratio = lp.work / peer.work;
      const limit = pair.limit;
      rows.push([pair.what, pair.leasepool, cell(lp), pair.peer, cell(peer), `${ratio.toFixed(3)}x`, `${(lp.total / peer.total).toFixed(3)}x`, limit === undefined ? '(shown)' : `≤ ${limit}x`]);
      if (limit === undefined) continue;
      const ok = ratio <= limit;
      budgets.push({
        variant: pair.leasepool,
        baseline: pair.peer,
        at: pair.callers ?? 1,
        metric: 'time',
        limit,
        note: `instructions per op (${pair.what})`,
        ratio,
        ok,
        line: `${pair.leasepool} / ${pair.peer} = ${ratio.toFixed(3)}x instructions of work per op (${fmtInt(lp.work)} / ${fmtInt(peer.work)} over ${fmtInt(ops)} ops; with JIT and GC ${(lp.total / peer.total).toFixed(3)}x; budget ≤ ${limit}x) ${ok ? 'OK' : 'MISSED'}`,
      });
    }
    process.stderr.write('\n');
    const table =
      'instructions per op, counted by callgrind over a fixed number of ops after a warm-up (one caller unless the row says otherwise): work (total · JIT compile · GC); ratio = work / work, with JIT and GC = total / total\n' +
      renderTable(['what', 'leasepool', 'instr/op', 'peer', 'instr/op', 'ratio', 'with JIT and GC', 'budget'], rows);
    return { tables: [table], budgets, checks, extra: { instructionsPerOp: perOp } };
  },
};
