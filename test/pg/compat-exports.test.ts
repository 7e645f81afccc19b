/**
 * `leasepool/adapters/pg` stands in for `pg` as a module: every value `pg` exports (the same
 * objects) with `Pool` replaced by the drop-in, as named exports and as the default export, from
 * CommonJS and from ESM; and pg's types through both (checked by the project's `tsc --noEmit`).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as pg from 'pg';
import pgDefault, * as facade from '../../adapters/pg';
import { Pool } from '../../adapters/pg/pool';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');

/** `pg`'s module object itself (a namespace import copies only its enumerable keys). */
const realPg = require('pg') as Record<string, unknown>;
/** What `pg` exports at run time, `native` (a lazy getter, not enumerable) included. */
const PG_EXPORTS = Object.getOwnPropertyNames(realPg).filter((key) => key !== 'default' && key !== '__esModule');

// Type level: pg's types through the namespace and through the default import, and the drop-in
// assignable wherever a pg.Pool is expected.
type ThroughDefault = pgDefault.QueryResult<{ n: number }>;
type ThroughNamespace = facade.QueryResultRow & facade.PoolClient extends object ? facade.PoolConfig : never;
const typed: ThroughDefault = { rows: [{ n: 1 }], command: 'SELECT', rowCount: 1, oid: 0, fields: [] };
const config: ThroughNamespace = { max: 1 };
const asPgPool: pg.Pool = new pgDefault.Pool({ max: 1 });
const ClientClass: typeof pg.Client = pgDefault.Client;
const parsed: pgDefault.DatabaseError | undefined = undefined;
void [typed, config, ClientClass, parsed];

afterAll(() => asPgPool.end());

describe('CommonJS', () => {
  test('every export of pg is there, the same object, except Pool, which is the drop-in', () => {
    const required = require('../../adapters/pg') as Record<string, unknown>;
    expect(PG_EXPORTS).toEqual(expect.arrayContaining(['Client', 'Pool', 'types', 'DatabaseError', 'escapeIdentifier', 'escapeLiteral', 'defaults', 'native']));
    for (const key of PG_EXPORTS) {
      const theirs = realPg[key];
      if (key === 'Pool') {
        expect(required[key]).toBe(Pool);
        expect(required[key]).not.toBe(theirs);
      } else expect([key, required[key]]).toEqual([key, theirs]);
    }
  });

  test('the default export is the same set (pg.Pool is the drop-in, pg.escapeLiteral works)', () => {
    for (const key of PG_EXPORTS) {
      const theirs = realPg[key];
      const ours = (pgDefault as unknown as Record<string, unknown>)[key];
      if (key === 'Pool') expect(ours).toBe(Pool);
      else expect([key, ours]).toEqual([key, theirs]);
    }
    expect(pgDefault.escapeLiteral("it's")).toBe("'it''s'");
    expect(new pgDefault.Pool()).toBeInstanceOf(Pool);
    expect(facade.default).toBe(pgDefault);
  });
});

describe('ESM (the built package, as Node loads it)', () => {
  let outDir: string;
  beforeAll(async () => {
    // Inside the checkout, as the package sits in an app: its `require('pg')` finds this checkout's
    // pg, not whatever a node_modules above the system's temp directory holds.
    mkdirSync(path.join(ROOT, '.tmp'), { recursive: true });
    outDir = mkdtempSync(path.join(ROOT, '.tmp', 'esm-'));
    await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', outDir, '--declaration', 'false', '--sourceMap', 'false'], { cwd: ROOT });
  }, 60_000);
  afterAll(() => rmSync(outDir, { recursive: true, force: true }));

  test('default import and named imports give pg, with Pool replaced', async () => {
    const entry = path.join(outDir, 'adapters/pg.js');
    const script = `
      import { createRequire } from 'node:module';
      import pg from ${JSON.stringify(entry)};
      import * as named from ${JSON.stringify(entry)};
      const real = createRequire(${JSON.stringify(path.join(ROOT, 'package.json'))})('pg');
      const out = {};
      for (const key of Object.getOwnPropertyNames(real)) {
        if (key === 'default') continue;
        out[key] = {
          viaDefault: key === 'Pool' ? pg.Pool !== real.Pool && typeof pg.Pool === 'function' : pg[key] === real[key],
          named: key in named ? (key === 'Pool' ? named.Pool === pg.Pool : named[key] === real[key]) : 'absent',
        };
      }
      console.log(JSON.stringify(out));
    `;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, env: { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules') } });
    const result = JSON.parse(stdout) as Record<string, { viaDefault: boolean; named: boolean | 'absent' }>;
    for (const key of PG_EXPORTS) expect([key, result[key]?.viaDefault]).toEqual([key, true]);
    // What pg's own ESM entry names (pg/esm/index.mjs) is importable by name here too.
    for (const key of ['Client', 'Pool', 'Connection', 'types', 'Query', 'DatabaseError', 'escapeIdentifier', 'escapeLiteral', 'Result', 'TypeOverrides', 'defaults']) {
      expect([key, result[key]?.named]).toEqual([key, true]);
    }
  }, 30_000);
});
