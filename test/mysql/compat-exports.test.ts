/**
 * `leasepool/adapters/mysql2` is `mysql2/promise` with `createPool` and `createPoolCluster` replaced: every runtime export of
 * mysql2/promise is there, the same value (createPool aside), named and default, in CommonJS and
 * from ESM. The type side is checked by test/types/mysql2-exports.ts (`npm run typecheck`).
 *
 * The ESM and CommonJS checks run on the compiled package (`tsc -p tsconfig.build.json`, what users
 * get), loaded by a plain `node` child process, not through jest's transform.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import * as mysql2 from 'mysql2/promise';

import * as facade from '../../adapters/mysql2';
import facadeDefault from '../../adapters/mysql2';
import { createPool } from '../../adapters/mysql2/pool';
import { createPoolCluster } from '../../adapters/mysql2/pool-cluster';

const ROOT = path.join(__dirname, '..', '..');

function run(file: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`${args.join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Runtime export names of mysql2/promise (getters such as `Types` included). */
const mysql2Names = Object.keys(mysql2).filter((k) => k !== 'default' && k !== '__esModule');

describe('runtime exports (CommonJS, as loaded here)', () => {
  test('every export of mysql2/promise is there, the same value, except createPool and createPoolCluster (the drop-ins)', () => {
    expect(mysql2Names).toEqual(expect.arrayContaining(['createConnection', 'createPool', 'createPoolCluster', 'format', 'escape', 'escapeId', 'raw', 'Types', 'Charsets']));
    const module = facade as unknown as Record<string, unknown>;
    const real = mysql2 as unknown as Record<string, unknown>;
    expect(mysql2Names.filter((name) => !(name in module))).toEqual([]);
    for (const name of mysql2Names) {
      if (name === 'createPool' || name === 'createPoolCluster') continue;
      expect([name, module[name]]).toEqual([name, real[name]]);
      expect(module[name] === real[name]).toBe(true);
    }
    expect(module.createPool).toBe(createPool);
    expect(module.createPool).not.toBe(mysql2.createPool);
    expect(module.createPoolCluster).toBe(createPoolCluster);
    expect(module.createPoolCluster).not.toBe(mysql2.createPoolCluster);
  });

  test('the default import is the same module: mysql.format, mysql.createConnection, mysql.createPool (the drop-in)', () => {
    const mysql = facadeDefault as unknown as Record<string, unknown>;
    for (const name of mysql2Names) expect([name, name in mysql]).toEqual([name, true]);
    expect(facadeDefault.createPool).toBe(createPool);
    expect(facadeDefault.format('SELECT ?? FROM t WHERE a = ?', ['c', "it's"])).toBe(mysql2.format('SELECT ?? FROM t WHERE a = ?', ['c', "it's"]));
    expect(facadeDefault.escape("a'b")).toBe("'a\\'b'");
    expect(facadeDefault.escapeId('x.y')).toBe('`x`.`y`');
    expect(String(facadeDefault.raw('NOW()').toSqlString())).toBe('NOW()');
    expect(facadeDefault.Types.VARCHAR).toBe(mysql2.Types.VARCHAR);
    expect(facadeDefault.createConnection).toBe(mysql2.createConnection);
  });
});

describe('the compiled package, from plain node', () => {
  let out: string;

  beforeAll(async () => {
    // Inside node_modules so that the build resolves mysql2 as an installed package would.
    out = mkdtempSync(path.join(ROOT, 'node_modules', '.leasepool-exports-'));
    await run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', out], ROOT);
  }, 120_000);

  afterAll(() => {
    if (out !== undefined) rmSync(out, { recursive: true, force: true });
  });

  /** A script's printed JSON: per name, whether the facade has it and whether it is mysql2's own value. */
  const report = `
    const out = {};
    for (const name of Object.keys(real)) {
      if (name === 'default') continue;
      out[name] = name in ns ? (ns[name] === real[name] ? 'same' : 'replaced') : 'missing';
    }
    console.log(JSON.stringify({ named: out, defaultFormat: typeof dflt.format, defaultCreatePool: dflt.createPool === ns.createPool, types: typeof dflt.Types }));
  `;

  function expected(names: string[]): Record<string, string> {
    return Object.fromEntries(names.map((name) => [name, name === 'createPool' || name === 'createPoolCluster' ? 'replaced' : 'same']));
  }

  test('ESM: import mysql, { createPool, format, … } from the package gives what mysql2/promise gives', async () => {
    const entry = path.join(out, 'adapters', 'mysql2.js');
    const script = `
      import * as ns from ${JSON.stringify(entry)};
      import dflt from ${JSON.stringify(entry)};
      import * as real from 'mysql2/promise';
      ${report}
    `;
    const result = JSON.parse(await run(process.execPath, ['--input-type=module', '-e', script], out)) as { named: Record<string, string>; defaultFormat: string; defaultCreatePool: boolean; types: string };
    // ESM sees the named exports node's CommonJS lexer finds in mysql2/promise (its getters, such as
    // `Types`, only on the default import): the same set here.
    expect(Object.keys(result.named).length).toBeGreaterThanOrEqual(10);
    expect(result.named).toEqual(expected(Object.keys(result.named)));
    expect(result).toMatchObject({ defaultFormat: 'function', defaultCreatePool: true, types: 'object' });
  });

  test('CommonJS: require() and the default of TypeScript/Babel interop (`.default`) give what mysql2/promise gives', async () => {
    const entry = path.join(out, 'adapters', 'mysql2.js');
    const script = `
      const ns = require(${JSON.stringify(entry)});
      const dflt = ns.default;
      const real = require('mysql2/promise');
      ${report}
    `;
    const result = JSON.parse(await run(process.execPath, ['-e', script], out)) as { named: Record<string, string>; defaultFormat: string; defaultCreatePool: boolean; types: string };
    expect(result.named).toEqual(expected(mysql2Names));
    expect(result).toMatchObject({ defaultFormat: 'function', defaultCreatePool: true, types: 'object' });
  });
});
