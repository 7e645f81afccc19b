/**
 * The layout holds: no import circles among the modules of src/ and adapters/ (type-only imports
 * and re-exports count: a type two modules share lives in the lower one), no module of src/
 * over the size a newcomer can read in one sitting, src/ free of drivers, and each adapter file
 * importing only its own driver.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const SRC_MAX_LINES = 400;
const DRIVERS = ['pg', 'mysql2', '@electric-sql/pglite'];
/** Which driver an adapter file belongs to, by the start of its name (or of its folder's). */
const OWNERS: ReadonlyArray<readonly [string, string]> = [['pglite', '@electric-sql/pglite'], ['pg', 'pg'], ['mysql2', 'mysql2']];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(rel));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

/** Every module specifier a file names in an import or export (`import type` and `export … from` included). */
export function specifiers(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/[^\n]*/g, '$1');
  const out: string[] = [];
  const patterns = [/\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const pattern of patterns) for (const m of code.matchAll(pattern)) out.push(m[1] as string);
  return out;
}

function resolveLocal(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = path.normalize(path.join(path.dirname(from), spec));
  for (const candidate of [base, `${base}.ts`, path.join(base, 'index.ts')]) {
    if (fs.existsSync(path.join(ROOT, candidate)) && fs.statSync(path.join(ROOT, candidate)).isFile()) return candidate;
  }
  return undefined;
}

/** The import graph of `files` (edges to files outside the set are dropped). */
function graphOf(files: readonly string[]): Map<string, string[]> {
  const set = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
    const targets = specifiers(text)
      .map((spec) => resolveLocal(file, spec))
      .filter((t): t is string => t !== undefined && set.has(t));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
export function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    indices.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indices.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, indices.get(w) as number));
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indices.has(v)) visit(v);
  return out;
}

test('the circle finder finds a circle, type-only imports included (it would catch one)', () => {
  expect(specifiers("import type { A } from './a';\nexport { B } from './b';\nimport './c';\n// import { D } from './d';")).toEqual(['./a', './b', './c']);
  expect(circles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]))).toEqual([['a', 'b', 'c']]);
  expect(circles(new Map([['a', ['b']], ['b', []]]))).toEqual([]);
});

test('no import circles in src/ and adapters/', () => {
  const files = [...sources('src'), ...sources('adapters')];
  expect(files.length).toBeGreaterThan(20);
  expect(circles(graphOf(files))).toEqual([]);
});

test(`no module of src/ is over ${SRC_MAX_LINES} lines`, () => {
  const long = sources('src')
    .map((file) => ({ file, lines: fs.readFileSync(path.join(ROOT, file), 'utf8').split('\n').length }))
    .filter((f) => f.lines > SRC_MAX_LINES);
  expect(long).toEqual([]);
});

test('src/ imports no driver; each adapter file imports only its own driver', () => {
  const offenders: string[] = [];
  for (const file of [...sources('src'), ...sources('adapters')]) {
    const named = specifiers(fs.readFileSync(path.join(ROOT, file), 'utf8')).filter((spec) => DRIVERS.some((d) => spec === d || spec.startsWith(`${d}/`)));
    const name = path.relative('adapters', file);
    const own = file.startsWith('adapters') ? OWNERS.find(([prefix]) => name.startsWith(prefix))?.[1] : undefined;
    for (const spec of named) if (own === undefined || !(spec === own || spec.startsWith(`${own}/`))) offenders.push(`${file} imports ${spec}`);
  }
  expect(offenders).toEqual([]);
});
