/**
 * The code under test, as it ships: `src/` and `adapters/` compiled by tsc (the `npm run build`
 * compiler and target) into `.tmp/bench-build`, then loaded from there. Running leasepool
 * through tsx instead would charge it for tsx's transform (esbuild `keepNames` wraps every
 * closure created at run time in a `__name()` call) while the peers run as plain JS.
 * `--source` loads the TypeScript sources through tsx instead (handy while editing).
 * `LEASEPOOL_BENCH_BUILD=<dir>` loads an existing build from <dir> instead of compiling (to compare
 * two versions of the core: compile each with bench/tsconfig.subject.json and a different outDir).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type * as Index from '../../src/index';
import type * as PgAdapter from '../../adapters/pg';
import type * as MysqlAdapter from '../../adapters/mysql2';
import type * as Fake from '../../test/helpers/fake-adapter';

const ROOT = path.join(__dirname, '..', '..');
const BUILD = process.env['LEASEPOOL_BENCH_BUILD'] !== undefined ? path.resolve(process.env['LEASEPOOL_BENCH_BUILD']) : path.join(ROOT, '.tmp', 'bench-build');
let fromSource = false;

/** Compile the subject (about a second with the native compiler). */
export function buildSubject(useSource: boolean): string {
  fromSource = useSource;
  if (useSource) return 'TypeScript sources through tsx (--source)';
  if (process.env['LEASEPOOL_BENCH_BUILD'] !== undefined) return `prebuilt ${BUILD} (LEASEPOOL_BENCH_BUILD)`;
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', path.join(ROOT, 'bench', 'tsconfig.subject.json')], { cwd: ROOT, stdio: 'pipe' });
  } catch (err) {
    // Type errors still emit (noEmitOnError is off): only a missing output is fatal.
    const out = String((err as { stdout?: unknown }).stdout ?? '');
    if (!existsSync(path.join(BUILD, 'src', 'index.js'))) throw new Error(`compiling the subject failed:\n${out}`);
    process.stderr.write(`note: tsc reported type errors while compiling the subject (emitted anyway):\n${out.split('\n').slice(0, 10).join('\n')}\n`);
  }
  return `compiled by tsc into ${path.relative(ROOT, BUILD)}`;
}

/** The environment a scenario's process needs to load the subject just built (not build it again). */
export function subjectEnv(useSource: boolean): Record<string, string> {
  return useSource ? {} : { LEASEPOOL_BENCH_BUILD: BUILD };
}

function load<T>(rel: string): T {
  const file = fromSource ? path.join(ROOT, rel) : path.join(BUILD, `${rel}.js`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(file) as T;
}

export const leasepool = (): typeof Index => load<typeof Index>('src/index');
export const pgAdapterModule = (): typeof PgAdapter => load<typeof PgAdapter>('adapters/pg');
export const mysqlAdapterModule = (): typeof MysqlAdapter => load<typeof MysqlAdapter>('adapters/mysql2');
export const fakeAdapterModule = (): typeof Fake => load<typeof Fake>('test/helpers/fake-adapter');
