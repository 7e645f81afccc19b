/**
 * Bad input, property-based (fast-check) where the input space is large:
 * - pool options and `withTx` options: every invalid combination is one `ConfigError` naming
 *   exactly the bad fields; no valid combination is rejected (an independent oracle below says
 *   which is which, from the documented contract);
 * - SQL-looking strings as isolation levels are rejected before anything is sent (statement log,
 *   connect count), and the dialects themselves refuse anything but allow-listed keywords and safe
 *   savepoint names;
 * - a second `release()` is a harmless no-op and never hands the connection out twice; use after
 *   release is a coded error; a connection only ever goes back to the pool it came from, and a
 *   lease or connection passed where a pool is expected is a coded error.
 */
import * as fc from 'fast-check';
import { createPool, withTx, type Pool, type PoolOptions, type TxOptions } from '../../src/index';
import type { Adapter } from '../../src/adapter';
import { ConfigError } from '../../src/errors';
import { MAX_TIMER_MS } from '../../src/options';
import { postgresDialect } from '../../src/dialects/postgres';
import { mysqlAdapter, mysqlDialect } from '../../adapters/mysql2';
import { pgAdapter } from '../../adapters/pg';
import { fakeAdapter, type FakeConnection } from '../helpers/fake-adapter';

// Seeded, so a failure replays (FC_SEED=<seed> to try another): unseeded, the share of valid
// combinations drawn changed from run to run, and once fell to the coverage floor below.
fc.configureGlobal({ seed: Number(process.env['FC_SEED'] ?? 20_261_208) });

const quiet = { warn: () => undefined, error: () => undefined };
const pools: Pool<object>[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 100 })));
});

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** An arbitrary that is either a valid value (tagged ok) or an invalid one (tagged bad). */
type Tagged = { readonly ok: boolean; readonly value: unknown };
const good = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<Tagged> => arb.map((value) => ({ ok: true, value }));
const bad = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<Tagged> => arb.map((value) => ({ ok: false, value }));
/** Valid values 5 times out of 6, so that whole inputs are often valid too. */
function field(valid: fc.Arbitrary<Tagged>[], invalid: fc.Arbitrary<Tagged>[]): fc.Arbitrary<Tagged> {
  return fc.oneof({ weight: 5, arbitrary: fc.oneof(...valid) }, { weight: 1, arbitrary: fc.oneof(...invalid) });
}

const notANumber = fc.constantFrom<unknown>('100', null, true, {}, [], 10n, () => 1, Symbol('x'));
const bigOrNaN = fc.constantFrom<unknown>(NaN, -Infinity, MAX_TIMER_MS + 1, 3e9, Number.MAX_VALUE);

/** Milliseconds: `> 0` (or `>= 0`), finite, at most MAX_TIMER_MS, optionally Infinity. */
function duration(opts: { zero: boolean; infinity: boolean }): fc.Arbitrary<Tagged> {
  const valid = [
    good(fc.integer({ min: 1, max: MAX_TIMER_MS })),
    good(fc.double({ min: 0.001, max: MAX_TIMER_MS, noNaN: true })),
    good(fc.constant(MAX_TIMER_MS)),
  ];
  if (opts.zero) valid.push(good(fc.constant(0)));
  if (opts.infinity) valid.push(good(fc.constant(Infinity)));
  const invalid = [bad(fc.integer({ min: -1_000_000, max: -1 })), bad(fc.double({ max: -0.001, noNaN: true })), bad(notANumber), bad(bigOrNaN)];
  if (!opts.zero) invalid.push(bad(fc.constant(0)));
  if (!opts.infinity) invalid.push(bad(fc.constant(Infinity)));
  return field(valid, invalid);
}

/** Integers `>= min`, optionally Infinity; `hi` keeps valid pools small. */
function integer(min: number, hi: number, infinity: boolean): fc.Arbitrary<Tagged> {
  const valid = [good(fc.integer({ min, max: hi }))];
  if (infinity) valid.push(good(fc.constant(Infinity)));
  const invalid = [
    bad(fc.integer({ min: -1000, max: min - 1 })),
    bad(fc.double({ min: min + 0.01, max: hi + 0.99, noNaN: true }).filter((x) => !Number.isInteger(x))),
    bad(notANumber),
    bad(fc.constantFrom(NaN, -Infinity)),
  ];
  if (!infinity) invalid.push(bad(fc.constant(Infinity)));
  return field(valid, invalid);
}

const poolFields = {
  name: field([good(fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/))], [bad(fc.constantFrom('', 'a b', 'x'.repeat(65), 'pool;drop', "p'1", 'é', 42, null))]),
  max: integer(1, 20, false),
  min: integer(0, 8, false),
  acquireTimeoutMs: duration({ zero: false, infinity: true }),
  connectTimeoutMs: duration({ zero: false, infinity: false }),
  maxWaiting: integer(0, 10_000, true),
  idleTimeoutMs: duration({ zero: false, infinity: true }),
  maxLifetimeMs: duration({ zero: false, infinity: true }),
  maxUses: integer(1, 1_000, true),
  leakDetectionMs: duration({ zero: true, infinity: false }),
  leakStacksPerSecond: field(
    [good(fc.integer({ min: 0, max: 100_000 })), good(fc.double({ min: 0, max: 1e6, noNaN: true })), good(fc.constant(Infinity))],
    [bad(fc.integer({ min: -1000, max: -1 })), bad(notANumber), bad(fc.constantFrom(NaN, -Infinity))],
  ),
  leaseTimeoutMs: duration({ zero: false, infinity: false }),
  resetOnRelease: field([good(fc.boolean())], [bad(fc.constantFrom(0, 1, 'true', null))]),
  logger: field([good(fc.constant(quiet))], [bad(fc.constantFrom(console.log, {}, { warn: () => undefined }, 'console', null))]),
};
type PoolField = keyof typeof poolFields;

/** Some fields (each maybe left out), plus maybe an unknown key. */
const poolInput = fc.record(
  {
    fields: fc.record(poolFields, { requiredKeys: [] }),
    unknown: fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('maxConnections', 'idleTimeout', 'timeout', 'poolSize') }),
  },
  { requiredKeys: ['fields'] },
);

/** The oracle: which fields of this input the documented contract calls bad. */
function badPoolFields(fields: Partial<Record<PoolField, Tagged>>, unknown: string | undefined): Set<string> {
  const out = new Set<string>();
  for (const [key, tagged] of Object.entries(fields) as [PoolField, Tagged][]) if (!tagged.ok) out.add(key);
  // min must not exceed max (checked when both are integers, defaults included).
  // An option set to undefined takes its default; any other value (null included) is used as given.
  const max = fields.max === undefined || fields.max.value === undefined ? 10 : fields.max.value;
  const min = fields.min === undefined || fields.min.value === undefined ? 0 : fields.min.value;
  if (typeof max === "number" && typeof min === "number" && Number.isInteger(max) && max >= 1 && Number.isInteger(min) && min > max) out.add("min");
  if (unknown !== undefined) out.add(unknown);
  return out;
}

describe('pool options (property-based)', () => {
  test('every invalid combination is one ConfigError naming exactly the bad fields; no valid one is rejected', async () => {
    let valid = 0;
    let invalid = 0;
    await fc.assert(
      fc.asyncProperty(poolInput, async ({ fields, unknown }) => {
        const options: Record<string, unknown> = { logger: quiet };
        for (const [key, tagged] of Object.entries(fields)) options[key] = (tagged as Tagged).value;
        if (unknown !== undefined) options[unknown] = 1;
        const expected = badPoolFields(fields, unknown);
        let pool: Pool<FakeConnection> | undefined;
        try {
          pool = createPool(fakeAdapter(), options as PoolOptions);
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          const fieldsNamed = new Set((err as ConfigError).fields);
          expect([...fieldsNamed].sort()).toEqual([...expected].sort());
          expect(codeOf(err)).toBe('INVALID_CONFIG');
          invalid++;
          return;
        }
        try {
          expect([...expected]).toEqual([]);
          valid++;
        } finally {
          await pool.close({ timeoutMs: 100 });
        }
      }),
      { numRuns: 400 },
    );
    // Both sides of the contract were exercised.
    expect(valid).toBeGreaterThan(20);
    expect(invalid).toBeGreaterThan(100);
  }, 60_000);

  test('a ConfigError message names the field but never echoes an object (which may hold secrets)', () => {
    const secret = { password: 'hunter2-secret' };
    let caught: unknown;
    try {
      createPool(fakeAdapter(), { max: secret as unknown as number, logger: quiet });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).fields).toEqual(['max']);
    expect(String((caught as Error).message)).not.toContain('hunter2');
  });
});

const txFields = {
  isolation: field(
    [good(fc.constantFrom('read uncommitted', 'read committed', 'repeatable read', 'serializable'))],
    [bad(fc.constantFrom('SERIALIZABLE', 'serializable; DROP TABLE accounts', "read committed' --", 'snapshot', '', 1, null))],
  ),
  readOnly: field([good(fc.boolean())], [bad(fc.constantFrom(0, 1, 'yes', null))]),
  deferrable: field([good(fc.boolean())], [bad(fc.constantFrom(0, 'true', null))]),
  retries: field([good(fc.integer({ min: 0, max: 100 }))], [bad(fc.constantFrom(-1, 101, 1.5, NaN, Infinity, '3', null))]),
  retryBaseDelayMs: duration({ zero: true, infinity: false }),
  retryMaxDelayMs: duration({ zero: true, infinity: false }),
  propagation: field([good(fc.constantFrom('required', 'requiresNew'))], [bad(fc.constantFrom('REQUIRED', 'nested', 'mandatory', '', null))]),
  // Valid deadlines are long enough that the trivial body never hits them.
  timeoutMs: field([good(fc.integer({ min: 5_000, max: MAX_TIMER_MS }))], [bad(fc.constantFrom(0, -1, NaN, Infinity, MAX_TIMER_MS + 1, '100', null))]),
  acquireTimeoutMs: field(
    [good(fc.oneof(fc.integer({ min: 5_000, max: MAX_TIMER_MS }), fc.constant(Infinity)))],
    [bad(fc.constantFrom(0, -5, NaN, -Infinity, MAX_TIMER_MS + 1, '1000', null))],
  ),
  signal: field([good(fc.constant(new AbortController().signal))], [bad(fc.constantFrom({ aborted: false }, 'signal', 1, null))]),
};
type TxField = keyof typeof txFields;

function badTxFields(fields: Partial<Record<TxField, Tagged>>, unknown: string | undefined): Set<string> {
  const out = new Set<string>();
  for (const [key, tagged] of Object.entries(fields) as [TxField, Tagged][]) if (!tagged.ok) out.add(key);
  // deferrable: true is only meaningful for a serializable read-only transaction.
  if (fields.deferrable?.value === true && (fields.isolation?.value !== 'serializable' || fields.readOnly?.value !== true)) out.add('deferrable');
  if (unknown !== undefined) out.add(unknown);
  return out;
}

describe('transaction options (property-based)', () => {
  test('every invalid combination is one ConfigError naming exactly the bad fields, sent nothing; no valid one is rejected', async () => {
    const adapter = fakeAdapter();
    const pool = createPool(adapter, { max: 2, leakDetectionMs: 0, logger: quiet });
    pools.push(pool as Pool<object>);
    let valid = 0;
    let invalid = 0;
    const txInput = fc.record(
      {
        fields: fc.record(txFields, { requiredKeys: [] }),
        unknown: fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('isolationLevel', 'readonly', 'timeout', 'nested') }),
      },
      { requiredKeys: ['fields'] },
    );
    await fc.assert(
      fc.asyncProperty(txInput, async ({ fields, unknown }) => {
        const options: Record<string, unknown> = {};
        for (const [key, tagged] of Object.entries(fields)) options[key] = (tagged as Tagged).value;
        if (unknown !== undefined) options[unknown] = true;
        const expected = badTxFields(fields, unknown);
        const sentBefore = adapter.db.statements;
        let ran = false;
        try {
          await pool.withTx(async (conn) => {
            ran = true;
            await conn.query('SELECT 1');
          }, options as TxOptions);
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          expect([...new Set((err as ConfigError).fields)].sort()).toEqual([...expected].sort());
          expect(ran).toBe(false);
          expect(adapter.db.statements).toBe(sentBefore);
          invalid++;
          return;
        }
        expect([...expected]).toEqual([]);
        expect(ran).toBe(true);
        valid++;
      }),
      { numRuns: 400 },
    );
    expect(valid).toBeGreaterThan(20);
    expect(invalid).toBeGreaterThan(100);
  }, 60_000);
});

describe('SQL-looking strings never reach the database', () => {
  const sqlish = fc.oneof(
    fc.string(),
    fc.constantFrom(
      'serializable; DROP TABLE accounts',
      "read committed'; --",
      'SERIALIZABLE',
      ' serializable',
      'serializable ',
      'repeatable read /* x */',
      'read uncommitted\nCOMMIT',
      '__proto__',
      'constructor',
      'toString',
    ),
    fc.tuple(fc.constantFrom('serializable', 'read committed'), fc.string({ minLength: 1 })).map(([a, b]) => a + b),
  );
  const allowed = new Set(['read uncommitted', 'read committed', 'repeatable read', 'serializable']);

  /** Wrap an adapter to count connects and statements: both must stay 0 for rejected options. */
  function counting<C extends object>(adapter: Adapter<C>): { adapter: Adapter<C>; connects: () => number; execs: () => number } {
    let connects = 0;
    let execs = 0;
    return {
      connects: () => connects,
      execs: () => execs,
      adapter: {
        ...adapter,
        connect(signal, events) {
          connects++;
          return adapter.connect(signal, events);
        },
        exec(conn, sql) {
          execs++;
          return adapter.exec(conn, sql);
        },
      },
    };
  }

  test.each([
    ['pg', () => pgAdapter('postgres://nobody@127.0.0.1:1/none') as unknown as Adapter<object>],
    ['mysql2', () => mysqlAdapter('mysql://nobody@127.0.0.1:1/none') as unknown as Adapter<object>],
    ['fake', () => fakeAdapter() as unknown as Adapter<object>],
  ])('withTx on %s: a bad isolation level is a ConfigError before any connect or statement', async (_name, make) => {
    const { adapter, connects, execs } = counting(make());
    const pool = createPool(adapter, { leakDetectionMs: 0, logger: quiet });
    pools.push(pool);
    await fc.assert(
      fc.asyncProperty(sqlish.filter((s) => !allowed.has(s)), async (isolation) => {
        const err = await pool.withTx(async () => 'never', { isolation } as unknown as TxOptions).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(ConfigError);
        expect((err as ConfigError).fields).toEqual(['isolation']);
      }),
      { numRuns: 200 },
    );
    expect(connects()).toBe(0);
    expect(execs()).toBe(0);
  });

  const beginPattern =
    /^BEGIN( ISOLATION LEVEL (READ UNCOMMITTED|READ COMMITTED|REPEATABLE READ|SERIALIZABLE))?( READ ONLY| READ WRITE)?( DEFERRABLE| NOT DEFERRABLE)?$/;
  const mysqlPattern = /^(SET TRANSACTION ISOLATION LEVEL (READ UNCOMMITTED|READ COMMITTED|REPEATABLE READ|SERIALIZABLE)|START TRANSACTION( READ ONLY| READ WRITE)?)$/;

  test('the dialects, called directly, emit only allow-listed keywords or throw ConfigError', () => {
    const anyValue = fc.oneof(sqlish, fc.boolean(), fc.integer(), fc.constant(undefined), fc.constant(null), fc.object());
    fc.assert(
      fc.property(fc.record({ isolation: anyValue, readOnly: anyValue, deferrable: anyValue }, { requiredKeys: [] }), (opts) => {
        for (const [dialect, pattern] of [
          [postgresDialect, beginPattern],
          [mysqlDialect, mysqlPattern],
        ] as const) {
          let statements: readonly string[];
          try {
            statements = dialect.begin(opts as never);
          } catch (err) {
            expect(err).toBeInstanceOf(ConfigError);
            continue;
          }
          for (const sql of statements) expect(sql).toMatch(pattern);
        }
      }),
      { numRuns: 500 },
    );
  });

  test('savepoint names: only safe identifiers are ever turned into SQL; anything else is a ConfigError', () => {
    const names = fc.oneof(
      fc.string(),
      fc.stringMatching(/^[a-z_][a-z0-9_]{0,70}$/),
      fc.constantFrom('lp_sp_1', 'x; ROLLBACK', 'a b', 'A', '1abc', 'sp"; DROP TABLE t; --', "sp'", 'sp`', 'sp\u0000', ''),
    );
    const safe = /^[a-z_][a-z0-9_]*$/;
    fc.assert(
      fc.property(names, (name) => {
        for (const dialect of [postgresDialect, mysqlDialect]) {
          const limit = dialect === postgresDialect ? 63 : Infinity;
          for (const [build, prefix] of [
            [dialect.savepoint, 'SAVEPOINT '],
            [dialect.releaseSavepoint, 'RELEASE SAVEPOINT '],
            [dialect.rollbackToSavepoint, 'ROLLBACK TO SAVEPOINT '],
          ] as const) {
            if (safe.test(name) && name.length <= limit) {
              expect(build(name)).toBe(prefix + name);
            } else {
              expect(() => build(name)).toThrow(ConfigError);
            }
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('release, use after release, and the pool a connection belongs to', () => {
  test('a second release() is a harmless no-op and never hands the connection out twice', async () => {
    const adapter = fakeAdapter();
    const pool = createPool(adapter, { max: 1, leakDetectionMs: 0, logger: quiet });
    pools.push(pool as Pool<object>);
    const first = await pool.acquire();
    const raw = adapter.db.connections[0];
    // Twice at once, then again after it finished: all resolve.
    await Promise.all([first.release(), first.release()]);
    await first.release();
    expect(first.state).toBe('released');
    expect(pool.stats()).toMatchObject({ size: 1, idle: 1, active: 0 });

    const second = await pool.acquire();
    // Releasing the old handle again must not give back the connection `second` now holds.
    await first.release();
    expect(second.state).toBe('active');
    expect(pool.stats()).toMatchObject({ idle: 0, active: 1 });
    const third = await pool.acquire({ timeoutMs: 100 }).then(
      () => 'handed out twice',
      (err: unknown) => codeOf(err),
    );
    expect(third).toBe('ACQUIRE_TIMEOUT');
    await second.conn.query('SELECT 1');
    expect(adapter.db.connections).toEqual([raw]);
    await second.release();
  });

  test('use after release: every access is a coded error, the connection is not touched', async () => {
    const adapter = fakeAdapter();
    const pool = createPool(adapter, { max: 1, leakDetectionMs: 0, logger: quiet });
    pools.push(pool as Pool<object>);
    let kept: FakeConnection | undefined;
    let keptLease: Awaited<ReturnType<typeof pool.acquire>> | undefined;
    await pool.withLease(async (conn, lease) => {
      kept = conn;
      keptLease = lease;
    });
    const conn = kept as FakeConnection & { release?: () => unknown };
    const lease = keptLease as NonNullable<typeof keptLease>;
    const sent = adapter.db.statements;
    expect(() => conn.query('SELECT 1')).toThrow(expect.objectContaining({ code: 'LEASE_RELEASED' }));
    // The driver-style release() on a guarded connection after its lease ended.
    expect(() => conn.release?.()).toThrow(expect.objectContaining({ code: 'LEASE_RELEASED' }));
    expect(() => lease.conn).toThrow(expect.objectContaining({ code: 'LEASE_RELEASED' }));
    expect(() => lease.defer(() => undefined)).toThrow(expect.objectContaining({ code: 'LEASE_RELEASED' }));
    await expect(lease.release()).resolves.toBeUndefined();
    expect(adapter.db.statements).toBe(sent);
    // The pool still works, and the connection was handed back once.
    await pool.withLease(async (c) => c.query('SELECT 1'));
    expect(adapter.db.connections).toHaveLength(1);
  });

  test('a revoked lease: use is LEASE_REVOKED', async () => {
    const pool = createPool(fakeAdapter(), { max: 1, leakDetectionMs: 0, logger: quiet });
    pools.push(pool as Pool<object>);
    const lease = await pool.acquire();
    const conn = lease.conn;
    await pool.close({ timeoutMs: 0 });
    expect(lease.state).toBe('revoked');
    expect(() => conn.query('SELECT 1')).toThrow(expect.objectContaining({ code: 'LEASE_REVOKED' }));
    await expect(lease.release()).resolves.toBeUndefined();
  });

  test("a lease always returns to its own pool, even released inside another pool's scope", async () => {
    const a = fakeAdapter();
    const b = fakeAdapter();
    const poolA = createPool(a, { name: 'a', max: 1, leakDetectionMs: 0, logger: quiet });
    const poolB = createPool(b, { name: 'b', max: 1, leakDetectionMs: 0, logger: quiet });
    pools.push(poolA as Pool<object>, poolB as Pool<object>);
    const leaseA = await poolA.acquire();
    await poolB.withTx(async (connB) => {
      await connB.query('SELECT 1');
      // Inside B's transaction, A's lease is released: it goes back to A, B's lease is untouched.
      await leaseA.release();
      expect(poolB.stats()).toMatchObject({ active: 1, idle: 0 });
      // A pool call for A inside B's scope takes A's connection, never B's.
      await poolA.withLease(async (connA) => {
        await connA.query('SELECT 2');
      });
    });
    expect(poolA.stats()).toMatchObject({ size: 1, idle: 1, active: 0 });
    expect(poolB.stats()).toMatchObject({ size: 1, idle: 1, active: 0 });
    expect(a.db.connections).toHaveLength(1);
    expect(b.db.connections).toHaveLength(1);
    expect(b.db.connections[0]?.log).not.toContain('SELECT 2');
    expect(a.db.connections[0]?.log).toContain('SELECT 2');
  });

  test('a lease or a connection passed where a pool is expected is LEASE_MISUSE, not a crash', async () => {
    const pool = createPool(fakeAdapter(), { max: 1, leakDetectionMs: 0, logger: quiet });
    pools.push(pool as Pool<object>);
    const lease = await pool.acquire();
    for (const notAPool of [lease, lease.conn, {}, null]) {
      const err = await Promise.resolve()
        .then(() => withTx(notAPool as unknown as Pool<FakeConnection>, async () => 'never'))
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(codeOf(err)).toBe('LEASE_MISUSE');
    }
    // Nothing was sent on the lease's connection, and it is still usable.
    await lease.conn.query('SELECT 1');
    await lease.release();
  });
});
