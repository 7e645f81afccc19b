/**
 * The package as users install it, and the documentation's code.
 *
 * 1. `npm pack` from the worktree (its `prepack` builds), the tarball installed into two fresh apps
 *    outside the repository, one ES module and one CommonJS. Peer dependencies (drivers, their
 *    typings, prom-client) are linked from the repository's node_modules, as a user would install
 *    them. Each app imports every export of every entry point and prints their names (compared
 *    with the public list: an internal export fails the test), and type-checks with
 *    `tsc --strict --module nodenext`, `skipLibCheck: false` and `exactOptionalPropertyTypes`.
 * 2. The docs check: every ```ts runnable block of README.md and docs/*.md type-checks in the ESM
 *    app against the installed package; blocks marked `runnable exec` (the quick starts) also run,
 *    against PG_URL, MYSQL_URL or PGlite, by the driver they import.
 *
 * Tables: qs_accounts (README's quick starts, in PG_URL's and MYSQL_URL's databases).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
// @types/emscripten: PGlite's own typings need it with skipLibCheck false (a devDependency of PGlite's).
const PEERS = ['pg', '@types/pg', 'mysql2', '@electric-sql/pglite', 'prom-client', '@types/node', '@types/emscripten'];

/** The public runtime exports of each entry point: anything else exported is an internal leaking out. */
const EXPORTS: Record<string, string[]> = {
  leasepool: [
    'AcquireTimeoutError', 'CleanupError', 'Cluster', 'ConfigError', 'ConnectError', 'INSPECTOR_SCHEMA_VERSION', 'Lease',
    'LeaseMisuseError', 'LeaseReleasedError', 'LeaseRevokedError', 'LeaseTimeoutError', 'LeasepoolError', 'NestedAcquireError', 'Pool',
    'PoolClosedError', 'PoolQueueFullError', 'TxAbortedError', 'TxEndedError', 'TxOutcomeUnknownError', 'attachInspector', 'createCluster',
    'createPool', 'inspectLeases', 'inspectorHandler', 'redact', 'serveInspector', 'serveMetrics', 'shutdownOnSignals', 'suppressedErrors',
    'withTx',
  ],
  'leasepool/adapters/pg': ['Pool', 'pgAdapter'],
  'leasepool/adapters/mysql2': ['MYSQL2_MESSAGES', 'Pool', 'PoolCluster', 'PoolNamespace', 'createPool', 'createPoolCluster', 'mysqlAdapter', 'mysqlDialect', 'validateMysqlBegin'],
  'leasepool/adapters/pglite': ['PgliteConnection', 'pgliteAdapter'],
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeout = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: { ...process.env, ...env }, timeout, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr }),
    );
  });
}

async function ok(cmd: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv, timeout?: number): Promise<string> {
  const result = await run(cmd, args, cwd, env, timeout);
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const tsconfig = {
  compilerOptions: {
    target: 'ES2022',
    lib: ['ES2022', 'ESNext.Disposable', 'DOM'],
    module: 'nodenext',
    moduleResolution: 'nodenext',
    types: ['node', 'emscripten'],
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: false,
    outDir: 'out',
    rootDir: 'src',
  },
  include: ['src'],
};

/** Every public name, imported by name (values and types), and exercised enough to type-check. */
const USES = `
import { PGlite } from '@electric-sql/pglite';
import type { Client } from 'pg';
import * as core from 'leasepool';
import * as pgEntry from 'leasepool/adapters/pg';
import * as mysqlEntry from 'leasepool/adapters/mysql2';
import * as pgliteEntry from 'leasepool/adapters/pglite';
import {
  createPool, withTx, shutdownOnSignals, serveMetrics, suppressedErrors, redact, Pool, Lease,
  LeasepoolError, ConfigError, ConnectError, PoolClosedError, AcquireTimeoutError, PoolQueueFullError, LeaseReleasedError,
  LeaseRevokedError, LeaseTimeoutError, NestedAcquireError, TxOutcomeUnknownError, TxAbortedError, LeaseMisuseError, CleanupError,
  type PoolOptions, type TxOptions, type LeaseScopeOptions, type AcquireOptions, type Transaction, type PoolStats, type CloseSummary,
  type LeakEvent, type LeakReturnedEvent, type ReclaimEvent, type PoolEvents, type ActiveLeaseInfo, type LeaseState, type Logger,
  type MetricsOptions, type AcquireOutcome, type TxOutcome, type CloseReason, type RecoveryKind, type Adapter, type BeginOptions,
  type CallerStack, type ConnectionEvents, type IsolationLevel, type QueryFunction, type TxDialect, type TxStatus, type Cleanup,
  type ShutdownOptions, type MetricsServer, type MetricsRegistryLike, type ServeMetricsOptions,
  serveInspector, inspectorHandler, inspectLeases, attachInspector, INSPECTOR_SCHEMA_VERSION,
  type InspectorServer, type ServeInspectorOptions, type InspectorHandler, type InspectorOptions, type InspectedPool,
  type InspectorSnapshot, type PoolSnapshot, type LeaseSnapshot, type LeaseActivity, type LeaseTransaction,
  type StatementSnapshot, type WaiterSnapshot, type ReportSnapshot,
  type DeadlineEvent, type OpenTelemetryOptions, type ServerIdentity,
} from 'leasepool';
import { pgAdapter, Pool as PgPool, type PgAdapterOptions, type PgQuery, type PgPoolConfig } from 'leasepool/adapters/pg';
import { mysqlAdapter, createPool as createMysqlPool, type MysqlAdapter, type MysqlAdapterOptions, type RowDataPacket } from 'leasepool/adapters/mysql2';
import { pgliteAdapter, PgliteConnection, type PgliteAdapterOptions, type PgliteInstance } from 'leasepool/adapters/pglite';

export const entries = { leasepool: core, 'leasepool/adapters/pg': pgEntry, 'leasepool/adapters/mysql2': mysqlEntry, 'leasepool/adapters/pglite': pgliteEntry };
export const values = [createPool, withTx, shutdownOnSignals, serveMetrics, suppressedErrors, redact, Pool, Lease, LeasepoolError, ConfigError,
  ConnectError, PoolClosedError, AcquireTimeoutError, PoolQueueFullError, LeaseReleasedError, LeaseRevokedError, LeaseTimeoutError,
  NestedAcquireError, TxOutcomeUnknownError, TxAbortedError, LeaseMisuseError, CleanupError, pgAdapter, PgPool, mysqlAdapter,
  createMysqlPool, pgliteAdapter, PgliteConnection, serveInspector, inspectorHandler, inspectLeases, attachInspector, INSPECTOR_SCHEMA_VERSION];
export type Types = [PoolOptions, TxOptions, LeaseScopeOptions, AcquireOptions, Transaction, PoolStats, CloseSummary, LeakEvent,
  LeakReturnedEvent, ReclaimEvent, PoolEvents, ActiveLeaseInfo, LeaseState, Logger, MetricsOptions, AcquireOutcome, TxOutcome,
  CloseReason, RecoveryKind, Adapter, BeginOptions, CallerStack, ConnectionEvents, IsolationLevel, QueryFunction, TxDialect, TxStatus,
  Cleanup, ShutdownOptions, MetricsServer, MetricsRegistryLike, ServeMetricsOptions, PgAdapterOptions, PgQuery, PgPoolConfig,
  MysqlAdapter, MysqlAdapterOptions, PgliteAdapterOptions, PgliteInstance, InspectorServer, ServeInspectorOptions, InspectorHandler,
  InspectorOptions, InspectedPool, InspectorSnapshot, PoolSnapshot, LeaseSnapshot, LeaseActivity, LeaseTransaction, StatementSnapshot,
  WaiterSnapshot, ReportSnapshot, DeadlineEvent, OpenTelemetryOptions, ServerIdentity];

/** Never called: type-checked only (no database in this app). */
export async function typed(): Promise<void> {
  const pool = createPool(pgAdapter('postgres://app@127.0.0.1/app'), { max: 2, leaseTimeoutMs: undefined, allowExitOnIdle: true, openTelemetry: false });
  const result = await pool.query<{ n: number }>('SELECT $1::int AS n', [1]);
  const n: number | undefined = result.rows[0]?.n;
  const conn: Client = await pool.withLease(async (c) => c, { timeoutMs: undefined });
  await pool.withTx(async (c, tx: Transaction<Client>) => c.query('SELECT 1', []).then(() => tx.depth), { isolation: undefined, retries: 2 });
  const my = createPool(mysqlAdapter('mysql://root@127.0.0.1/app'));
  const [rows] = await my.query<RowDataPacket[]>('SELECT ? AS n', [1]);
  // Your own PGlite instance, from whichever build (ESM or CommonJS) this app resolves.
  const lite = createPool(pgliteAdapter(new PGlite()));
  const notes = await lite.query<{ body: string }>('SELECT $1::text AS body', ['x']);
  const body: string | undefined = notes.rows[0]?.body;
  const compat: PgPool = new PgPool({ max: 1, leasepool: { name: 'compat' } });
  // Pools of different drivers share one inspector.
  const inspector: InspectorServer = await serveInspector([pool, my, lite], { port: 0, token: undefined, allowReclaim: false });
  const snapshot: InspectorSnapshot = inspectLeases([pool, my]);
  const sql: string | undefined = snapshot.pools[0]?.leases[0]?.statement?.sql;
  void [n, conn, rows, body, compat, inspector, sql];
}
`;

const MAIN = `
import * as mysql2Promise from 'mysql2/promise';
import * as pgDriver from 'pg';
import { entries } from './uses.js';
const out: Record<string, string[]> = {};
for (const [name, ns] of Object.entries({ ...entries, 'mysql2/promise': mysql2Promise, pg: pgDriver })) out[name] = Object.keys(ns).filter((k) => k !== 'default' && k !== '__esModule').sort();
console.log(JSON.stringify(out));
`;

/**
 * What a fresh app must see: EXPORTS, where leasepool/adapters/mysql2 also re-exports everything
 * mysql2/promise exports and leasepool/adapters/pg everything pg exports (issue 18: each is the
 * driver's module with its pool replaced), as the same app sees the driver's names (ESM sees fewer
 * than CommonJS: not its getters).
 */
function expectedExports(printed: Record<string, string[]>): Record<string, string[]> {
  const driver = printed['mysql2/promise'] ?? [];
  expect(driver).toEqual(expect.arrayContaining(['createConnection', 'createPool', 'escape', 'format']));
  const mysqlEntry = EXPORTS['leasepool/adapters/mysql2'] ?? [];
  const pg = printed['pg'] ?? [];
  expect(pg).toEqual(expect.arrayContaining(['Client', 'Pool', 'types']));
  const pgEntry = EXPORTS['leasepool/adapters/pg'] ?? [];
  return {
    ...EXPORTS,
    'leasepool/adapters/mysql2': [...new Set([...mysqlEntry, ...driver])].sort(),
    'mysql2/promise': driver,
    // pg's `utils`, `_pools` and lazy `native` are exports of pg too, which an ES module app does not
    // see on pg itself (Node's CommonJS lexer misses them there): ours declares them.
    'leasepool/adapters/pg': [...new Set([...pgEntry, ...pg, '_pools', 'native', 'utils'])].sort(),
    pg,
  };
}

interface App {
  dir: string;
}

async function makeApp(base: string, tarball: string, kind: 'module' | 'commonjs'): Promise<App> {
  const dir = path.join(base, `app-${kind}`);
  fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `app-${kind}`, private: true, type: kind }));
  await ok('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball], dir);
  for (const peer of PEERS) {
    const link = path.join(dir, 'node_modules', peer);
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'node_modules', peer), link, 'dir');
  }
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
  fs.writeFileSync(path.join(dir, 'src', 'uses.ts'), USES);
  fs.writeFileSync(path.join(dir, 'src', 'main.ts'), MAIN);
  return { dir };
}

/** ```ts runnable blocks: { file, line, exec, code }. */
function runnableBlocks(): { file: string; line: number; exec: boolean; code: string }[] {
  const files = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const blocks: { file: string; line: number; exec: boolean; code: string }[] = [];
  for (const file of files) {
    const lines = fs.readFileSync(path.join(ROOT, file), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const open = /^```ts runnable( exec)?\s*$/.exec(lines[i] ?? '');
      if (open === null) continue;
      const start = i + 1;
      let end = start;
      while (end < lines.length && lines[end] !== '```') end++;
      blocks.push({ file, line: start + 1, exec: open[1] !== undefined, code: lines.slice(start, end).join('\n') });
      i = end;
    }
  }
  return blocks;
}

let base: string;
let esm: App;
let cjs: App;

beforeAll(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'leasepool-pack-'));
  const packed = await ok('npm', ['pack', '--pack-destination', base, '--loglevel=error'], ROOT, {}, 180_000);
  const tarball = path.join(base, packed.trim().split('\n').pop() ?? '');
  expect(fs.existsSync(tarball)).toBe(true);
  [esm, cjs] = await Promise.all([makeApp(base, tarball, 'module'), makeApp(base, tarball, 'commonjs')]);
}, 300_000);

afterAll(() => {
  if (base !== undefined) fs.rmSync(base, { recursive: true, force: true });
});

describe('the package as users install it', () => {
  test('ships the build, typings, LICENSE and grafana files; no source maps, no sources, no tests', () => {
    const installed = path.join(esm.dir, 'node_modules', 'leasepool');
    const files = fs.readdirSync(installed, { recursive: true }).map(String);
    for (const f of ['LICENSE', 'README.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/adapters/pg.js', 'grafana/alerts.yml', 'grafana/leasepool.json']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.endsWith('.map') || (f.endsWith('.ts') && !f.endsWith('.d.ts')) || f.startsWith('test'))).toEqual([]);
    // @internal members are stripped from the typings of the public classes.
    const typings = ['dist/src/pool.d.ts', 'dist/src/lease.d.ts', 'dist/src/index.d.ts'].map((f) => fs.readFileSync(path.join(installed, f), 'utf8')).join('\n');
    for (const internal of ['acquireLease', 'scopedCallback', 'runAndRelease', 'captureAcquireSite', 'releaseFromHandle']) expect(typings).not.toContain(internal);
    const pkg = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg['license']).toBe('MIT');
    expect(pkg['repository']).toBeDefined();
    expect(pkg['peerDependenciesMeta']).toMatchObject({ '@types/pg': { optional: true } });
  });

  for (const kind of ['module', 'commonjs'] as const) {
    test(`a fresh ${kind === 'module' ? 'ES module' : 'CommonJS'} app type-checks (strict, nodenext, skipLibCheck false) and loads every export`, async () => {
      const app = kind === 'module' ? esm : cjs;
      await ok(process.execPath, [TSC, '-p', 'tsconfig.json'], app.dir);
      const printed = await ok(process.execPath, [path.join('out', 'main.js')], app.dir);
      const seen = JSON.parse(printed) as Record<string, string[]>;
      expect(seen).toEqual(expectedExports(seen));
      // The dashboard and alert rules are reachable through the exports map too.
      const resolved = await ok(process.execPath, ['-e', "console.log(require.resolve('leasepool/grafana/alerts.yml'))"], app.dir);
      expect(fs.existsSync(resolved.trim())).toBe(true);
    }, 120_000);
  }
});

describe('docs check: runnable code blocks of README.md and docs/', () => {
  const blocks = runnableBlocks();
  const name = (b: { file: string; line: number }): string => `docs_${b.file.replace(/[^A-Za-z0-9]/g, '_')}_${b.line}`;

  test('there are runnable blocks, among them a quick start per driver', () => {
    const quick = blocks.filter((b) => b.exec).map((b) => b.code);
    expect(quick.some((c) => c.includes("'leasepool/adapters/pg'"))).toBe(true);
    expect(quick.some((c) => c.includes("'leasepool/adapters/mysql2'"))).toBe(true);
    expect(quick.some((c) => c.includes("'leasepool/adapters/pglite'"))).toBe(true);
  });

  test('every runnable block type-checks against the installed package', async () => {
    const dir = path.join(esm.dir, 'src', 'docs');
    fs.mkdirSync(dir, { recursive: true });
    for (const b of blocks) fs.writeFileSync(path.join(dir, `${name(b)}.ts`), `// ${b.file}:${b.line}\n${b.code}\nexport {};\n`);
    const result = await run(process.execPath, [TSC, '-p', 'tsconfig.json'], esm.dir);
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
  }, 120_000);

  test('the quick starts run against the real databases and PGlite', async () => {
    for (const b of blocks.filter((x) => x.exec)) {
      const url = b.code.includes("'leasepool/adapters/mysql2'") ? MYSQL_URL : b.code.includes("'leasepool/adapters/pg'") ? PG_URL : undefined;
      const result = await run(process.execPath, [path.join('out', 'docs', `${name(b)}.js`)], esm.dir, url === undefined ? {} : { DATABASE_URL: url }, 60_000);
      if (result.code !== 0) throw new Error(`${b.file}:${b.line} exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
      expect(result.stderr).toBe('');
    }
  }, 180_000);
});
