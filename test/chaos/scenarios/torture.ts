/**
 * The torture test of issue 17: "a transaction is all or nothing, whatever the body does".
 *
 * One run = one seed. Workers move money between accounts with `withTx` (each transfer logs its
 * op id in the same transaction, see bank.ts) while the body, chosen at random, misbehaves: it
 * throws, runs under a tiny `timeoutMs`, has its signal aborted, opens nested savepoints (awaited)
 * and parallel nested withTx (Promise.all), leaves statements and nested scopes un-awaited, catches
 * server errors and carries on (MariaDB: real deadlocks from locking in opposite order; PostgreSQL:
 * a failing statement or a serialization failure caught with try/catch), leaks leases (acquired and
 * never released; a connection kept past its scope), changes session state (`SET autocommit = 0`,
 * `LOCK TABLES`, `pg_advisory_lock`, a session `SET`) and releases. A killer terminates backends
 * from an admin connection at random, and `pool.close()` races the end of the load.
 *
 * Every random choice comes from one mulberry32 PRNG seeded by the run's seed, so `SEED=n` replays
 * the same sequence of choices (the interleaving with the servers still varies with timing).
 *
 * Afterwards, exactly:
 * - the money invariant: the sum of balances is unchanged and every balance is its opening balance
 *   plus the logged credits minus the logged debits;
 * - every withTx that resolved is in the commit log; every one that rejected (other than
 *   TX_OUTCOME_UNKNOWN) is not; a plain autocommit write that resolved is in the log too;
 * - no server session of the pool is left inside a transaction, holds an advisory lock or a table
 *   lock, or hands a later borrower `autocommit = 0`;
 * - a connection kept past its scope cannot be used;
 * - `pool.stats()` is back to zero active / pending after close.
 */
import { createPool } from '../../../src/index';
import type { Adapter } from '../../../src/adapter';
import type { Pool } from '../../../src/pool';
import type { Logger } from '../../../src/logger';
import { ACCOUNTS, Bank, type Outcome, type OutcomeKind, type Verdict } from './bank';
import type { Admin, DbTarget, Row } from './targets';

/** mulberry32: a tiny seeded PRNG (32-bit state), uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Random choices of one run, all from the seeded PRNG. */
class Dice {
  constructor(readonly next: () => number) {}
  chance(p: number): boolean {
    return this.next() < p;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }
  /** Two different accounts. */
  pair(): [number, number] {
    const from = this.int(1, ACCOUNTS);
    const to = 1 + ((from + this.int(0, ACCOUNTS - 2)) % ACCOUNTS);
    return [from, to];
  }
}

/** The body gave up on purpose (a random throw): a known rollback. */
class TortureThrow extends Error {
  constructor(where: string) {
    super(`torture: body threw (${where})`);
  }
}

export interface TortureOptions {
  readonly seed: number;
  /** How long workers start new operations (ms). */
  readonly durationMs: number;
  readonly workers?: number;
}

export interface TortureRun {
  readonly seed: number;
  readonly database: string;
  readonly attempted: number;
  readonly committed: number;
  readonly rolledBack: number;
  readonly unknown: number;
  readonly kills: number;
  readonly closeRaced: boolean;
  readonly verdict: Verdict;
  /** Every broken promise of this run; empty when all held. */
  readonly problems: readonly string[];
  /** Operations by kind (what the dice chose). */
  readonly kinds: Record<string, number>;
  /** Rejections by code. */
  readonly codes: Record<string, number>;
}

export interface TortureSummary {
  readonly database: string;
  readonly seeds: readonly number[];
  readonly runs: readonly TortureRun[];
  readonly failingSeeds: readonly number[];
  /** Seeds not run because the series' time budget was spent. */
  readonly skippedSeeds: readonly number[];
  readonly invariantHeld: boolean;
}

const KINDS = [
  'plain',
  'throw',
  'deadline',
  'abort',
  'savepoint',
  'parallel',
  'unawaitedFailing',
  'trailingUpdate',
  'unawaitedNested',
  'caughtError',
  'leak',
  'keptConn',
  'session',
  'plainWrite',
  'hangingDefer',
] as const;
type Kind = (typeof KINDS)[number];
/** Relative weights; the plain transfer keeps money moving between the faults. */
const WEIGHTS: Record<Kind, number> = {
  plain: 6,
  throw: 2,
  deadline: 2,
  abort: 1,
  savepoint: 2,
  parallel: 2,
  unawaitedFailing: 2,
  trailingUpdate: 2,
  unawaitedNested: 2,
  caughtError: 3,
  leak: 1,
  keptConn: 1,
  session: 2,
  plainWrite: 2,
  hangingDefer: 1,
};

/**
 * The kinds a run draws from: all, or the comma-separated list in `TORTURE_KINDS` (to narrow a
 * failing seed down to its cause, e.g. `TORTURE_KINDS=plain,caughtError`).
 */
function enabledKinds(): readonly Kind[] {
  const only = process.env.TORTURE_KINDS;
  if (only === undefined || only === '') return KINDS;
  const wanted = new Set(only.split(',').map((k) => k.trim()));
  const unknown = [...wanted].filter((k) => !(KINDS as readonly string[]).includes(k));
  if (unknown.length > 0) throw new Error(`TORTURE_KINDS: unknown kind(s) ${unknown.join(', ')}; known: ${KINDS.join(', ')}`);
  return KINDS.filter((k) => wanted.has(k));
}

function chooseKind(dice: Dice, enabled: readonly Kind[]): Kind {
  const total = enabled.reduce((sum, k) => sum + WEIGHTS[k], 0);
  let x = dice.next() * total;
  for (const k of enabled) {
    x -= WEIGHTS[k];
    if (x < 0) return k;
  }
  return enabled[0] ?? 'plain';
}

/** Leaked leases are reclaimed at this age. Above the pg adapter's settle bound (1 s), so a statement still running past that bound is seen. */
const LEASE_TIMEOUT_MS = 1_500;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function codeOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; errno?: unknown } | null;
  if (typeof e?.code === 'string') return e.code;
  if (typeof e?.errno === 'number') return `errno:${e.errno}`;
  if (err instanceof TortureThrow) return 'TORTURE_THROW';
  return err instanceof Error ? err.name : typeof err;
}

/** A rejected withTx: only an unknown outcome may have committed. */
function rejectedKind(err: unknown): OutcomeKind {
  return codeOf(err) === 'TX_OUTCOME_UNKNOWN' ? 'unknown' : 'rolled_back';
}

function quietLogger(): Logger {
  const none = (): void => undefined;
  return { warn: none, error: none, info: none, debug: none };
}

/** Wrap an adapter to know its live raw connections and every backend id it ever had. */
function tracking(target: DbTarget, adapter: Adapter<object>): { adapter: Adapter<object>; live: Set<object>; backends: Set<number> } {
  const live = new Set<object>();
  const backends = new Set<number>();
  return {
    live,
    backends,
    adapter: {
      ...adapter,
      async connect(signal, events) {
        const raw = await adapter.connect(signal, events);
        live.add(raw);
        const id = target.backendId(raw);
        if (id !== undefined) backends.add(id);
        return raw;
      },
      async close(raw) {
        live.delete(raw);
        return adapter.close(raw);
      },
    },
  };
}

/** One run of the torture test for `seed` on `target`. Never throws for a broken promise: see `problems`. */
export async function tortureOnce(target: DbTarget, options: TortureOptions): Promise<TortureRun> {
  // The run's own choices (close race, killer) and, per operation, a PRNG of its own derived from
  // (seed, worker, operation index): an operation's choices do not depend on how earlier ones went.
  const dice = new Dice(mulberry32(options.seed));
  const opDice = (worker: number, index: number): Dice =>
    new Dice(mulberry32(Math.imul(options.seed, 0x9e3779b1) ^ Math.imul(worker + 1, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)));
  const workers = options.workers ?? 8;
  const pg = target.name === 'postgres';
  const tag = `lp_torture_${process.pid}`;
  const bank = new Bank(target, target.endpoint, `torture_${target.name}_${process.pid.toString(36)}`);
  const side = `${bank.prefix}_side`;
  await bank.setup();
  await bank.withAdmin(async (admin) => {
    await admin.query(`DROP TABLE IF EXISTS ${side}`);
    await admin.query(`CREATE TABLE ${side} (id INT PRIMARY KEY)${pg ? '' : ' ENGINE=InnoDB'}`);
  });
  const { adapter, live, backends } = tracking(target, target.adapter(target.endpoint, { tag }));
  const pool = createPool(adapter, {
    name: 'torture',
    max: 6,
    leakDetectionMs: 0,
    // Leaked leases are reclaimed within the run.
    leaseTimeoutMs: LEASE_TIMEOUT_MS,
    acquireTimeoutMs: 2_000,
    connectTimeoutMs: 2_000,
    logger: quietLogger(),
    metrics: false,
  });
  pool.on('error', () => undefined);
  const q = target.query;
  const outcomes: Outcome[] = [];
  const problems: string[] = [];
  const kinds: Record<string, number> = {};
  const codes: Record<string, number> = {};
  const advisoryKeys = new Set<number>();
  const kept: object[] = [];
  let nextOp = 1;
  /** Money each op moves (for naming the ops behind an account that does not match the log). */
  const moves = new Map<number, { from: number; to: number; amount: number; note: string }>();
  /** The kind of operation each op id belongs to (to name the cause of a lost or phantom commit). */
  const opKinds = new Map<number, string>();
  const record = (op: number, kind: OutcomeKind, err?: unknown): void => {
    const t = performance.now();
    const code = err === undefined ? undefined : codeOf(err);
    if (code !== undefined) codes[code] = (codes[code] ?? 0) + 1;
    outcomes.push({ op, kind, code, message: err instanceof Error ? err.message : undefined, causeCode: undefined, startedAt: t, endedAt: t });
  };
  const accounts = bank.accounts;
  const log = bank.log;
  const credit = (conn: object, id: number, amount: number): Promise<Row[]> => q(conn, `UPDATE ${accounts} SET balance = balance + ? WHERE id = ?`, [amount, id]);
  const logOp = (conn: object, op: number, from: number, to: number, amount: number): Promise<Row[]> =>
    q(conn, `INSERT INTO ${log} (op, src, dst, amount) VALUES (?, ?, ?, ?)`, [op, from, to, amount]);
  /** A statement that fails on the server; on PostgreSQL it fails at run time, after `sleepMs`. */
  const failingSql = (sleepMs: number): string =>
    pg ? `SELECT (pg_sleep(${(sleepMs / 1000).toFixed(3)})::text || 'x')::int` : `SELECT no_such_column FROM ${accounts}`;

  /** A whole transfer on `conn` (rows in id order), optionally throwing between debit and credit. */
  const transfer = async (conn: object, op: number, throwMidway: boolean, dice: Dice): Promise<void> => {
    const [from, to] = dice.pair();
    const amount = dice.int(1, 50);
    const sleepMs = dice.chance(0.2) ? dice.int(1, 5) : 0;
    moves.set(op, { from, to, amount, note: throwMidway ? 'debit only, then throw' : 'transfer' });
    if (throwMidway) {
      await credit(conn, from, -amount);
      throw new TortureThrow('midway');
    }
    await bank.transfer(conn, op, from, to, amount, sleepMs);
  };

  /** Run `fn` as a top-level withTx for op(s) and record its outcome; `nested` ops settle with it. */
  const topTx = async (
    op: number,
    body: (conn: object, nested: NestedOps) => Promise<void>,
    dice: Dice,
    opts: Parameters<Pool<object>['withTx']>[1] = {},
  ): Promise<void> => {
    const nested = new NestedOps(dice);
    try {
      await pool.withTx((conn) => body(conn, nested), opts);
      record(op, 'committed');
      for (const n of nested.ops) {
        // The outer committed after every nested scope settled (it waits for them), so a nested op
        // still pending here cannot be judged: the outer would have committed around it.
        if (n.settled) record(n.op, n.ok ? 'committed' : 'rolled_back', n.error);
        else {
          record(n.op, 'unknown');
          problems.push(`${opKinds.get(op)}: withTx resolved while a nested withTx of its body was still running`);
        }
      }
    } catch (err) {
      const kind = rejectedKind(err);
      record(op, kind, err);
      // Also the nested scopes still running (Promise.all rejected at the first failure): whatever
      // they do later, nothing of theirs may commit once the outer rejected.
      for (const n of nested.ops) record(n.op, kind === 'unknown' ? (n.settled && !n.ok ? 'rolled_back' : 'unknown') : 'rolled_back', n.error);
    }
  };

  class NestedOps {
    constructor(readonly dice: Dice) {}
    readonly ops: { op: number; settled: boolean; ok: boolean; error?: unknown }[] = [];
    /** A nested withTx (savepoint) that transfers; may throw. */
    async savepoint(conn: object, throwIt: boolean): Promise<void> {
      void conn;
      const op = nextOp++;
      opKinds.set(op, 'nested savepoint');
      const entry: { op: number; settled: boolean; ok: boolean; error?: unknown } = { op, settled: false, ok: false };
      this.ops.push(entry);
      try {
        await pool.withTx(async (c) => {
          await transfer(c, op, false, this.dice);
          if (throwIt) throw new TortureThrow('savepoint');
        });
        entry.ok = true;
      } catch (err) {
        entry.error = err;
        if (!(err instanceof TortureThrow)) throw err;
      } finally {
        entry.settled = true;
      }
    }
  }

  const runKind = async (kind: Kind, dice: Dice): Promise<void> => {
    const op = nextOp++;
    opKinds.set(op, kind);
    switch (kind) {
      case 'plain':
        return topTx(op, (conn) => transfer(conn, op, false, dice), dice, { retries: dice.int(0, 2) });
      case 'throw': {
        const midway = dice.chance(0.5);
        return topTx(
          op,
          async (conn) => {
            await transfer(conn, op, midway, dice);
            throw new TortureThrow('end');
          },
          dice,
        );
      }
      case 'deadline': {
        // A tiny deadline. Half the time the body goes on past it and moves the credit side of its
        // transfer in a nested withTx: the outer (the debit) is rolled back at the deadline, so that
        // nested scope must fail; if it finds a fresh connection and commits, money appears.
        const timeoutMs = dice.int(1, 30);
        const serverSleepMs = dice.int(0, 40);
        const splitAcrossDeadline = dice.chance(0.5);
        const nestedKind = dice.pick(['withTx', 'withLease'] as const);
        const [from, to] = dice.pair();
        const amount = dice.int(1, 50);
        moves.set(op, { from, to, amount, note: splitAcrossDeadline ? `debit, deadline, credit in nested ${nestedKind}` : 'transfer' });
        return topTx(
          op,
          async (conn) => {
            if (!splitAcrossDeadline) return bank.transfer(conn, op, from, to, amount, serverSleepMs);
            await credit(conn, from, -amount);
            await sleep(timeoutMs + 5);
            const rest = async (c: object): Promise<void> => {
              await credit(c, to, amount);
              await logOp(c, op, from, to, amount);
            };
            await (nestedKind === 'withTx' ? pool.withTx(rest) : pool.withLease(rest));
          },
          dice,
          { timeoutMs },
        );
      }
      case 'abort': {
        const controller = new AbortController();
        if (dice.chance(0.3)) controller.abort(new Error('aborted before'));
        else setTimeout(() => controller.abort(new Error('aborted')), dice.int(0, 5));
        return topTx(op, (conn) => transfer(conn, op, false, dice), dice, { signal: controller.signal });
      }
      case 'savepoint': {
        const count = dice.int(1, 3);
        const throws = Array.from({ length: count }, () => dice.chance(0.4));
        return topTx(
          op,
          async (conn, nested) => {
            await transfer(conn, op, false, dice);
            for (const t of throws) await nested.savepoint(conn, t);
          },
          dice,
        );
      }
      case 'parallel': {
        const count = dice.int(2, 3);
        const throws = Array.from({ length: count }, () => dice.chance(0.3));
        const settleAll = dice.chance(0.5);
        return topTx(
          op,
          async (conn, nested) => {
            await transfer(conn, op, false, dice);
            const all = throws.map((t) => nested.savepoint(conn, t));
            if (settleAll) await Promise.allSettled(all);
            else await Promise.all(all);
          },
          dice,
        );
      }
      case 'unawaitedFailing': {
        // Still running when the body returns: failing at once, soon, or after the adapter's settle
        // bound; alone, or queued behind another un-awaited statement.
        const sleepMs = dice.pick([0, 10, 300, 1_100]);
        const behindAnother = dice.chance(0.4);
        return topTx(
          op,
          async (conn) => {
            await transfer(conn, op, false, dice);
            if (behindAnother) void q(conn, target.sleepSql(20)).catch(() => undefined);
            void q(conn, failingSql(sleepMs)).catch(() => undefined);
          },
          dice,
        );
      }
      case 'trailingUpdate': {
        // The credit is the trailing un-awaited statement: it runs inside the transaction or not
        // at all, else the transfer is half applied.
        const [from, to] = dice.pair();
        const amount = dice.int(1, 50);
        moves.set(op, { from, to, amount, note: 'credit left un-awaited' });
        return topTx(
          op,
          async (conn) => {
            await credit(conn, from, -amount);
            await logOp(conn, op, from, to, amount);
            void credit(conn, to, amount).catch(() => undefined);
          },
          dice,
        );
      }
      case 'unawaitedNested': {
        const outerThrows = dice.chance(0.5);
        const innerDelayMs = dice.pick([0, 0, 1, 5]);
        const op2 = nextOp++;
        opKinds.set(op2, 'unawaitedNested (inner)');
        let innerSettled: Promise<boolean> | undefined;
        let outerOk = false;
        let outerKind: OutcomeKind = 'rolled_back';
        try {
          await pool.withTx(async (conn) => {
            await transfer(conn, op, false, dice);
            const inner = pool.withTx(async (c) => {
              if (innerDelayMs > 0) await sleep(innerDelayMs);
              await transfer(c, op2, false, dice);
            });
            innerSettled = inner.then(
              () => true,
              () => false,
            );
            if (outerThrows) throw new TortureThrow('outer, inner still running');
          });
          outerOk = true;
          record(op, 'committed');
        } catch (err) {
          outerKind = rejectedKind(err);
          record(op, outerKind, err);
        }
        const innerOk = innerSettled === undefined ? false : await innerSettled;
        // The inner op commits only with its outer transaction.
        record(op2, outerOk && innerOk ? 'committed' : outerKind === 'unknown' && innerOk ? 'unknown' : 'rolled_back');
        return;
      }
      case 'caughtError': {
        if (pg) {
          const serializable = dice.chance(0.5);
          return topTx(
            op,
            async (conn) => {
              await transfer(conn, op, false, dice);
              try {
                await q(conn, failingSql(0));
              } catch {
                // carry on as if nothing happened
              }
              await q(conn, `SELECT count(*) FROM ${log}`);
            },
            dice,
            serializable ? { isolation: 'serializable' } : {},
          );
        }
        // MariaDB: lock the two rows in the transfer's order (not id order), so two of these
        // deadlock each other (1213); the body catches every error and carries on.
        const [from, to] = dice.pair();
        const amount = dice.int(1, 50);
        const pauseMs = dice.int(0, 4);
        moves.set(op, { from, to, amount, note: 'opposite lock order, errors caught' });
        return topTx(op, async (conn) => {
          void dice;
          const attempt = async (sql: string, params: unknown[]): Promise<void> => {
            try {
              await q(conn, sql, params);
            } catch {
              // carry on
            }
          };
          await attempt(`UPDATE ${accounts} SET balance = balance + ? WHERE id = ?`, [-amount, from]);
          if (pauseMs > 0) await q(conn, target.sleepSql(pauseMs));
          await attempt(`UPDATE ${accounts} SET balance = balance + ? WHERE id = ?`, [amount, to]);
          await attempt(`INSERT INTO ${log} (op, src, dst, amount) VALUES (?, ?, ?, ?)`, [op, from, to, amount]);
        }, dice);
      }
      case 'leak': {
        // Acquired and never released: the pool's leaseTimeoutMs reclaims it. Sometimes with a
        // transaction left open on it, sometimes with a transfer begun by hand.
        try {
          const lease = await pool.acquire({ timeoutMs: 500 });
          if (dice.chance(0.5)) {
            const [from] = dice.pair();
            const amount = dice.int(1, 50);
            moves.set(op, { from, to: 0, amount, note: 'leaked lease: BEGIN + debit, never ended' });
            await q(lease.conn, pg ? 'BEGIN' : 'START TRANSACTION');
            await credit(lease.conn, from, -amount);
          }
        } catch (err) {
          codes[codeOf(err) ?? '?'] = (codes[codeOf(err) ?? '?'] ?? 0) + 1;
        }
        return;
      }
      case 'keptConn': {
        let keptConn: object | undefined;
        try {
          await pool.withLease(async (conn) => {
            keptConn = conn;
            await q(conn, 'SELECT 1');
          });
        } catch {
          return;
        }
        if (keptConn !== undefined) kept.push(keptConn);
        return;
      }
      case 'session': {
        const change = pg ? dice.pick(['advisory', 'guc'] as const) : dice.pick(['autocommit', 'lockTables'] as const);
        const key = 170_000 + options.seed * 100 + dice.int(0, 9);
        try {
          await pool.withLease(async (conn) => {
            if (change === 'advisory') {
              advisoryKeys.add(key);
              await q(conn, `SELECT pg_advisory_lock(${key})`);
            } else if (change === 'guc') await q(conn, `SET default_transaction_isolation = '${dice.pick(['serializable', 'repeatable read'])}'`);
            else if (change === 'autocommit') await q(conn, 'SET autocommit = 0');
            else await q(conn, `LOCK TABLES ${side} WRITE`);
          });
        } catch (err) {
          codes[codeOf(err) ?? '?'] = (codes[codeOf(err) ?? '?'] ?? 0) + 1;
        }
        return;
      }
      case 'hangingDefer': {
        // A deferred cleanup that never settles must not disable the scope's deadline.
        const timeoutMs = dice.int(20, 200);
        const boundMs = timeoutMs + 1_000;
        // The deadline runs from the lease in hand: the bound too (the acquire may wait behind
        // leaked leases for a while first).
        let leasedAt: number | undefined;
        const scope = pool
          .withLease(
            async (conn, lease) => {
              leasedAt = performance.now();
              lease.defer(() => new Promise<void>(() => undefined));
              await q(conn, 'SELECT 1');
            },
            { timeoutMs },
          )
          .then(
            () => 'resolved' as const,
            () => 'rejected' as const,
          );
        let timer: ReturnType<typeof setTimeout> | undefined;
        const hung = new Promise<'hung'>((resolve) => {
          const watch = (): void => {
            if (leasedAt !== undefined && performance.now() - leasedAt > boundMs) resolve('hung');
            else timer = setTimeout(watch, 50);
          };
          watch();
        });
        const outcome = await Promise.race([scope, hung]);
        clearTimeout(timer);
        if (outcome === 'hung') problems.push('hangingDefer: a withLease({ timeoutMs }) whose cleanup never settles was still pending 1 s after its deadline');
        return;
      }
      case 'plainWrite': {
        // One autocommit statement outside any transaction: resolved means written. Its outcome is
        // unknown when its connection died under it (a killed backend), or when the pool took its
        // lease back while it ran (deadline, close: the error says `statementInFlight`); any
        // other rejection means it was not written.
        try {
          await pool.withLease((conn) => logOp(conn, op, 1, 1, 0));
          record(op, 'committed');
        } catch (err) {
          const mayHaveLanded = pool.adapter.isFatal(err) || (err as { statementInFlight?: unknown }).statementInFlight === true;
          record(op, mayHaveLanded ? 'unknown' : rejectedKind(err), err);
        }
        return;
      }
    }
  };

  const started = performance.now();
  const endAt = started + options.durationMs;
  let stop = false;
  const enabled = enabledKinds();
  const killing = process.env.TORTURE_KILLS !== '0';
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; !stop && performance.now() < endAt; i++) {
      const d = opDice(w, i);
      let kind = chooseKind(d, enabled);
      // What holds a connection until a deadline starts only in the first half of the window: the
      // drain after the load stays short (a sound pool's seed takes the window plus under a second).
      if ((kind === 'leak' || kind === 'hangingDefer') && performance.now() > started + options.durationMs / 2) kind = 'plain';
      kinds[kind] = (kinds[kind] ?? 0) + 1;
      try {
        await runKind(kind, d);
      } catch (err) {
        problems.push(`${kind}: the harness itself threw ${err instanceof Error ? err.stack : String(err)}`);
      }
      await new Promise((r) => setImmediate(r));
    }
  };

  let kills = 0;
  const killer = async (): Promise<void> => {
    const admin = await target.admin(target.endpoint);
    try {
      for (;;) {
        await sleep(dice.int(100, 400));
        if (stop || performance.now() >= endAt) return;
        const victim = dice.pick([...live]);
        if (!killing) continue;
        const id = victim === undefined ? undefined : target.backendId(victim);
        if (id === undefined) continue;
        await target.kill(admin, id).catch(() => undefined);
        kills++;
      }
    } finally {
      await admin.close();
    }
  };

  const load = Promise.all([...Array.from({ length: workers }, (_, w) => worker(w)), killer()]);
  const closeRaced = dice.chance(0.5);
  const closeTimeoutMs = dice.int(0, 300);
  await sleep(options.durationMs);
  if (closeRaced) {
    // close() while the last operations are still running.
    const closing = pool.close({ timeoutMs: closeTimeoutMs });
    stop = true;
    await load;
    await closing;
  } else {
    stop = true;
    await load;
    // Leaked leases are reclaimed at leaseTimeoutMs; then every connection is idle.
    await until(() => pool.stats().active === 0, 2_000);
    if (pool.stats().active > 0) problems.push(`${pool.stats().active} leases still active 2 s after the load ended (leaseTimeoutMs is 1.5 s)`);
    await probeIdle(pool, target, problems);
    await bank.withAdmin((admin) => serverSessionsClean(target, admin, tag, backends, side, advisoryKeys, problems, 'before close'));
    await pool.close({ timeoutMs: 1_000 });
  }
  const stats = pool.stats();
  if (stats.active !== 0 || stats.pending !== 0) problems.push(`after close, stats() says active ${stats.active}, pending ${stats.pending}`);
  // A connection kept past its scope must refuse statements.
  for (const conn of kept) {
    const used = await q(conn, 'SELECT 1').then(
      () => true,
      () => false,
    );
    if (used) problems.push('a connection kept past its scope still ran a statement');
  }
  // The pool's sessions end at close; none may be left inside a transaction meanwhile.
  await bank.withAdmin(async (admin) => {
    await until(async () => (await poolSessions(target, admin, tag, backends)) === 0, 3_000);
    await serverSessionsClean(target, admin, tag, backends, side, advisoryKeys, problems, 'after close');
    const left = await poolSessions(target, admin, tag, backends);
    if (left > 0) problems.push(`${left} server sessions of the pool still exist 3 s after close`);
  });
  const verdict = await bank.verify(outcomes);
  await bank.withAdmin((admin) => admin.query(`DROP TABLE IF EXISTS ${side}`));
  await bank.drop();
  if (!verdict.invariantHeld) {
    problems.push(`money invariant broken: sum ${verdict.sum} (expected ${verdict.expectedSum}), accounts not matching the log: ${verdict.halfAppliedAccounts.join(',') || 'none'}`);
    if (process.env.TORTURE_TRACE === '1') {
      // Every op that touched a mismatched account, with what the client saw (replay with SEED=n).
      const seen = new Map(outcomes.map((o) => [o.op, o]));
      for (const account of verdict.halfAppliedAccounts) {
        const touching = [...moves].filter(([, m]) => m.from === account || m.to === account);
        problems.push(
          `  account ${account}: ` +
            touching.map(([op, m]) => `op ${op} ${opKinds.get(op)} (${m.note}) ${m.from}->${m.to} ${m.amount}: ${seen.get(op)?.kind ?? 'no outcome'}${seen.get(op)?.code ? ` ${seen.get(op)?.code}` : ''}`).join('; '),
        );
      }
    }
  }
  const named = (ops: readonly number[]): string => {
    const byKind = new Map<string, number>();
    for (const op of ops) byKind.set(opKinds.get(op) ?? '?', (byKind.get(opKinds.get(op) ?? '?') ?? 0) + 1);
    return [...byKind].map(([k, n]) => `${n} ${k}`).join(', ');
  };
  if (verdict.lostCommits.length > 0) problems.push(`${verdict.lostCommits.length} operations resolved but are not in the log (${named(verdict.lostCommits)})`);
  if (verdict.phantomCommits.length > 0) {
    // What the caller was told, for each: the error's code and message.
    const told = new Map(outcomes.map((o) => [o.op, o]));
    const errors = verdict.phantomCommits.map((op) => `${told.get(op)?.code ?? '?'}: ${told.get(op)?.message ?? ''}`.slice(0, 160)).join('; ');
    problems.push(`${verdict.phantomCommits.length} operations rejected but are in the log (${named(verdict.phantomCommits)}; told ${errors})`);
  }
  const count = (k: OutcomeKind): number => outcomes.filter((o) => o.kind === k).length;
  if (count('committed') === 0) problems.push('nothing committed at all');
  const counted = new Map<string, number>();
  for (const p of problems) counted.set(p, (counted.get(p) ?? 0) + 1);
  const distinct = [...counted].map(([p, n]) => (n > 1 ? `${p} (x${n})` : p));
  return {
    seed: options.seed,
    database: target.name,
    attempted: outcomes.length,
    committed: count('committed'),
    rolledBack: count('rolled_back'),
    unknown: count('unknown'),
    kills,
    closeRaced,
    verdict,
    problems: distinct,
    kinds,
    codes,
  };
}

async function until(predicate: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await predicate()) && performance.now() < deadline) await sleep(20);
}

/** What the next borrower sees on every idle connection: not in a transaction, autocommit on. */
async function probeIdle(pool: Pool<object>, target: DbTarget, problems: string[]): Promise<void> {
  const leases = [];
  try {
    const idle = pool.stats().idle;
    for (let i = 0; i < idle; i++) leases.push(await pool.acquire({ timeoutMs: 1_000 }));
    for (const lease of leases) {
      if (await target.serverInTransaction(lease.conn)) problems.push('an idle connection of the pool was inside a transaction');
      if (target.name === 'mariadb') {
        const rows = await target.query(lease.conn, 'SELECT @@autocommit AS a');
        if (Number(rows[0]?.['a']) !== 1) problems.push('an idle connection of the pool hands the next borrower autocommit = 0');
      }
    }
  } catch (err) {
    problems.push(`probing idle connections failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    await Promise.all(leases.map((l) => l.release().catch(() => undefined)));
  }
}

/** Server sessions of the pool (by application_name on PostgreSQL, by thread id on MariaDB). */
async function poolSessions(target: DbTarget, admin: Admin, tag: string, backends: ReadonlySet<number>): Promise<number> {
  if (target.name === 'postgres') {
    const rows = await admin.query('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = ?', [tag]);
    return Number(rows[0]?.['n']);
  }
  if (backends.size === 0) return 0;
  const rows = await admin.query(`SELECT count(*) AS n FROM information_schema.processlist WHERE id IN (${[...backends].join(',')})`);
  return Number(rows[0]?.['n']);
}

/** The server's word: no session of the pool in a transaction, holding an advisory lock or a table lock. */
async function serverSessionsClean(
  target: DbTarget,
  admin: Admin,
  tag: string,
  backends: ReadonlySet<number>,
  side: string,
  advisoryKeys: ReadonlySet<number>,
  problems: string[],
  when: string,
): Promise<void> {
  if (target.name === 'postgres') {
    const inTx = await admin.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = ? AND state IN ('idle in transaction', 'idle in transaction (aborted)')`, [tag]);
    if (Number(inTx[0]?.['n']) > 0) problems.push(`${when}: ${inTx[0]?.['n']} sessions of the pool idle in a transaction (pg_stat_activity)`);
    const locks = await admin.query(`SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND a.application_name = ?`, [tag]);
    if (Number(locks[0]?.['n']) > 0) problems.push(`${when}: sessions of the pool hold ${locks[0]?.['n']} advisory locks`);
    void advisoryKeys;
    return;
  }
  if (backends.size > 0) {
    const ids = [...backends].join(',');
    // A session whose connection the pool has just destroyed (reclaimed, broken) lingers until the
    // server has noticed the closed socket and rolled it back: give those the time to go.
    const count = async (): Promise<number> => {
      const rows = await admin.query(`SELECT count(*) AS n FROM information_schema.innodb_trx t JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id WHERE t.trx_mysql_thread_id IN (${ids}) AND p.command = 'Sleep'`);
      return Number(rows[0]?.['n']);
    };
    await until(async () => (await count()) === 0, 2_000);
    const inTx = await count();
    if (inTx > 0) problems.push(`${when}: ${inTx} idle sessions of the pool inside a transaction (innodb_trx)`);
  }
  // A table lock left behind blocks everyone else: try the side table from the admin session.
  await admin.query('SET SESSION lock_wait_timeout = 1');
  try {
    await admin.query(`INSERT INTO ${side} (id) VALUES (1)`);
    await admin.query(`DELETE FROM ${side}`);
  } catch (err) {
    problems.push(`${when}: the side table is still locked by a session of the pool (${err instanceof Error ? err.message : String(err)})`);
  } finally {
    await admin.query('SET SESSION lock_wait_timeout = DEFAULT');
  }
}

/**
 * Environment knobs: `SEED=n` (one seed), `TORTURE_SEEDS` (how many, default 20, from
 * `TORTURE_FIRST_SEED`, default 1), `TORTURE_MS` (load window per seed, default 1200; with setup,
 * drain and checks a seed takes about 1.5-2 s on a sound pool).
 */
export function tortureSeeds(): { seeds: number[]; durationMs: number } {
  const durationMs = Number(process.env.TORTURE_MS ?? 1_200);
  if (process.env.SEED !== undefined && process.env.SEED !== '') return { seeds: [Number(process.env.SEED)], durationMs };
  const count = Number(process.env.TORTURE_SEEDS ?? 20);
  const first = Number(process.env.TORTURE_FIRST_SEED ?? 1);
  return { seeds: Array.from({ length: count }, (_, i) => first + i), durationMs };
}

/**
 * Every seed on `target`; `onRun` sees each run as it finishes. `budgetMs` (env `TORTURE_BUDGET_MS`,
 * default 44 s) bounds the whole series: seeds left when it is spent are not run, and that fails
 * the series (`skippedSeeds`), so a slow, broken pool cannot stretch CI nor pass with fewer seeds.
 */
export async function torture(
  target: DbTarget,
  options: { seeds?: readonly number[]; durationMs?: number; budgetMs?: number; onRun?: (run: TortureRun) => void } = {},
): Promise<TortureSummary> {
  const defaults = tortureSeeds();
  const seeds = options.seeds ?? defaults.seeds;
  const durationMs = options.durationMs ?? defaults.durationMs;
  const budgetMs = options.budgetMs ?? Number(process.env.TORTURE_BUDGET_MS ?? 44_000);
  const started = performance.now();
  const runs: TortureRun[] = [];
  const skippedSeeds: number[] = [];
  for (const seed of seeds) {
    if (performance.now() - started > budgetMs) {
      skippedSeeds.push(seed);
      continue;
    }
    const run = await tortureOnce(target, { seed, durationMs });
    runs.push(run);
    options.onRun?.(run);
  }
  const failingSeeds = runs.filter((r) => r.problems.length > 0).map((r) => r.seed);
  return {
    database: target.name,
    seeds: runs.map((r) => r.seed),
    runs,
    failingSeeds,
    skippedSeeds,
    invariantHeld: failingSeeds.length === 0 && skippedSeeds.length === 0,
  };
}

/** One line per failing seed, for test output and the report. */
export function describeFailures(summary: TortureSummary): string[] {
  const out = summary.runs.filter((r) => r.problems.length > 0).map((r) => `SEED=${r.seed} (${r.database}): ${r.problems.join(' | ')}`);
  if (summary.skippedSeeds.length > 0) out.push(`${summary.database}: time budget spent, seeds not run: ${summary.skippedSeeds.join(', ')}`);
  return out;
}
