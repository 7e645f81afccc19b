/**
 * The bank-transfer workload every chaos scenario drives, and the checks made after it.
 *
 * Each transfer is one `withTx`: debit one account, (optionally sleep on the server, to widen the
 * window a fault can hit), credit another, and log the transfer (op id, from, to, amount) in the
 * same transaction. Afterwards the database is the judge:
 * - the sum of balances is unchanged (the invariant);
 * - every account's balance equals its opening balance plus the logged credits minus the logged
 *   debits, so no transfer was half applied;
 * - every transfer the client saw commit is logged, and none the client saw fail with a known
 *   rollback is (an unknown outcome may be either).
 * Every failure must carry a clear error: a leasepool code, a driver error the adapter calls
 * fatal, or a retryable one (deadlock / serialization failure after the retries ran out).
 */
import type { Adapter } from '../../../src/adapter';
import type { Pool } from '../../../src/pool';
import type { TxOptions } from '../../../src/transaction';
import { releaseProbe } from '../../../src/release';
import type { Admin, DbTarget, Endpoint } from './targets';

export const ACCOUNTS = 20;
export const OPENING_BALANCE = 1_000;

/** Leasepool codes that are a clear, expected answer under faults. */
const CLEAR_CODES: ReadonlySet<string> = new Set([
  'CONNECT_FAILED',
  'ACQUIRE_TIMEOUT',
  'POOL_QUEUE_FULL',
  'POOL_CLOSED',
  'LEASE_TIMEOUT',
  'LEASE_REVOKED',
  'TX_OUTCOME_UNKNOWN',
]);

export type OutcomeKind = 'committed' | 'rolled_back' | 'not_started' | 'unknown' | 'unclear';

export interface Outcome {
  readonly op: number;
  readonly kind: OutcomeKind;
  /** leasepool code, or `driver:<code>` for a driver error. */
  readonly code: string | undefined;
  readonly message: string | undefined;
  /** Code of the error's `cause` (e.g. TX_OUTCOME_UNKNOWN caused by LEASE_TIMEOUT). */
  readonly causeCode: string | undefined;
  readonly startedAt: number;
  readonly endedAt: number;
}

export class Bank {
  readonly accounts: string;
  readonly log: string;

  constructor(
    readonly target: DbTarget,
    readonly endpoint: Endpoint,
    /** Unique per scenario: `chaos_<scenario>_<db>`. */
    readonly prefix: string,
  ) {
    this.accounts = `${prefix}_accounts`;
    this.log = `${prefix}_log`;
  }

  async setup(): Promise<void> {
    await this.withAdmin(async (admin) => {
      await admin.query(`DROP TABLE IF EXISTS ${this.log}`);
      await admin.query(`DROP TABLE IF EXISTS ${this.accounts}`);
      const engine = this.target.name === 'mariadb' ? ' ENGINE=InnoDB' : '';
      await admin.query(`CREATE TABLE ${this.accounts} (id INT PRIMARY KEY, balance BIGINT NOT NULL)${engine}`);
      await admin.query(`CREATE TABLE ${this.log} (op BIGINT PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amount INT NOT NULL)${engine}`);
      const values = Array.from({ length: ACCOUNTS }, (_, i) => `(${i + 1}, ${OPENING_BALANCE})`).join(', ');
      await admin.query(`INSERT INTO ${this.accounts} (id, balance) VALUES ${values}`);
    });
  }

  async drop(): Promise<void> {
    await this.withAdmin(async (admin) => {
      await admin.query(`DROP TABLE IF EXISTS ${this.log}`);
      await admin.query(`DROP TABLE IF EXISTS ${this.accounts}`);
    });
  }

  /**
   * One transfer on `conn` inside the caller's transaction. Rows are locked in id order (no
   * deadlocks between transfers: faults are the point here, not lock cycles).
   */
  async transfer(conn: object, op: number, from: number, to: number, amount: number, sleepMs = 0): Promise<void> {
    const q = this.target.query;
    const [first, second] = from < to ? [from, to] : [to, from];
    await q(conn, `UPDATE ${this.accounts} SET balance = balance + ? WHERE id = ?`, [first === from ? -amount : amount, first]);
    if (sleepMs > 0) await q(conn, this.target.sleepSql(sleepMs));
    await q(conn, `UPDATE ${this.accounts} SET balance = balance + ? WHERE id = ?`, [second === from ? -amount : amount, second]);
    await q(conn, `INSERT INTO ${this.log} (op, src, dst, amount) VALUES (?, ?, ?, ?)`, [op, from, to, amount]);
  }

  /** Read balances and the log, and judge the run. */
  async verify(outcomes: readonly Outcome[]): Promise<Verdict> {
    return this.withAdmin(async (admin) => {
      const balances = new Map<number, number>();
      for (const row of await admin.query(`SELECT id, balance FROM ${this.accounts}`)) balances.set(Number(row['id']), Number(row['balance']));
      const expected = new Map<number, number>();
      for (let i = 1; i <= ACCOUNTS; i++) expected.set(i, OPENING_BALANCE);
      const logged = new Set<number>();
      for (const row of await admin.query(`SELECT op, src, dst, amount FROM ${this.log}`)) {
        const amount = Number(row['amount']);
        logged.add(Number(row['op']));
        expected.set(Number(row['src']), (expected.get(Number(row['src'])) ?? 0) - amount);
        expected.set(Number(row['dst']), (expected.get(Number(row['dst'])) ?? 0) + amount);
      }
      let sum = 0;
      const halfApplied: number[] = [];
      for (const [id, balance] of balances) {
        sum += balance;
        if (expected.get(id) !== balance) halfApplied.push(id);
      }
      const lostCommits: number[] = [];
      const phantomCommits: number[] = [];
      let unknownCommitted = 0;
      for (const o of outcomes) {
        if (o.kind === 'committed' && !logged.has(o.op)) lostCommits.push(o.op);
        if ((o.kind === 'rolled_back' || o.kind === 'not_started') && logged.has(o.op)) phantomCommits.push(o.op);
        if (o.kind === 'unknown' && logged.has(o.op)) unknownCommitted++;
      }
      return {
        sum,
        expectedSum: ACCOUNTS * OPENING_BALANCE,
        accounts: balances.size,
        halfAppliedAccounts: halfApplied,
        lostCommits,
        phantomCommits,
        unknownCommitted,
        logged: logged.size,
        invariantHeld: sum === ACCOUNTS * OPENING_BALANCE && balances.size === ACCOUNTS && halfApplied.length === 0,
      };
    });
  }

  async withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
    const admin = await this.target.admin(this.endpoint);
    try {
      return await fn(admin);
    } finally {
      await admin.close();
    }
  }
}

export interface Verdict {
  readonly sum: number;
  readonly expectedSum: number;
  readonly accounts: number;
  /** Accounts whose balance does not match the logged transfers (a half-applied transfer). */
  readonly halfAppliedAccounts: readonly number[];
  /** Ops the client saw commit that are not in the database. */
  readonly lostCommits: readonly number[];
  /** Ops the client saw fail (rolled back / never started) that are in the database. */
  readonly phantomCommits: readonly number[];
  /** Ops with TX_OUTCOME_UNKNOWN that did commit. */
  readonly unknownCommitted: number;
  readonly logged: number;
  readonly invariantHeld: boolean;
}

/** Sort an error into an outcome kind and a code. */
export function classify(adapter: Adapter<object>, err: unknown, began: boolean): { kind: OutcomeKind; code: string | undefined } {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && CLEAR_CODES.has(code)) {
    if (code === 'TX_OUTCOME_UNKNOWN') return { kind: 'unknown', code };
    return { kind: began ? 'rolled_back' : 'not_started', code };
  }
  if (adapter.isFatal(err) || adapter.isRetryable(err)) {
    return { kind: began ? 'rolled_back' : 'not_started', code: `driver:${typeof code === 'string' ? code : String((err as { errno?: unknown }).errno ?? 'fatal')}` };
  }
  return { kind: 'unclear', code: typeof code === 'string' ? code : undefined };
}

/**
 * Watches every connection the release path hands back to the pool (`releaseProbe`): counts the
 * ones whose driver does not report an idle session. Install one at a time.
 */
export class ReturnWatch {
  returned = 0;
  inTransaction = 0;
  readonly statuses = new Map<string, number>();

  constructor(private readonly target: DbTarget) {}

  install(): this {
    if (releaseProbe.onReturn !== undefined) throw new Error('another ReturnWatch is installed');
    releaseProbe.onReturn = (adapter, raw) => {
      this.returned++;
      const status = this.target.driverTxStatus(adapter, raw);
      if (status !== 'idle') {
        this.inTransaction++;
        this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
      }
    };
    return this;
  }

  uninstall(): void {
    releaseProbe.onReturn = undefined;
  }
}

/**
 * Ask the server, on every idle connection of the pool, whether its session is inside a
 * transaction. Returns how many are (must be 0) and how many were probed.
 */
export async function probeIdleConnections(pool: Pool<object>, target: DbTarget): Promise<{ probed: number; inTransaction: number }> {
  const idle = pool.stats().idle;
  const leases = [];
  let inTransaction = 0;
  try {
    for (let i = 0; i < idle; i++) leases.push(await pool.acquire({ timeoutMs: 5_000 }));
    for (const lease of leases) {
      if (await target.serverInTransaction(lease.conn)) inTransaction++;
    }
  } finally {
    await Promise.all(leases.map((l) => l.release().catch(() => undefined)));
  }
  return { probed: leases.length, inTransaction };
}

export interface LoadOptions {
  readonly workers: number;
  /** Stop starting new transfers when this returns true. */
  readonly stop: () => boolean;
  readonly tx?: TxOptions;
  /** Server-side sleep between debit and credit. */
  readonly sleepMs?: number;
  /** Called after every settled transfer. */
  readonly onSettled?: (outcome: Outcome) => void;
  /** Pause between transfers of one worker (0: none). */
  readonly thinkMs?: number;
}

let nextOp = 1;

/** Run transfers from `workers` concurrent loops until `stop()`; resolves with every outcome. */
export async function runLoad(pool: Pool<object>, bank: Bank, options: LoadOptions): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  const worker = async (): Promise<void> => {
    while (!options.stop()) {
      const outcome = await transferOnce(pool, bank, options.tx, options.sleepMs ?? 0);
      outcomes.push(outcome);
      options.onSettled?.(outcome);
      // A failed transfer waits a little before the next (no spinning while the database is away).
      const pauseMs = outcome.kind === 'committed' ? (options.thinkMs ?? 0) : Math.max(options.thinkMs ?? 0, 20);
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
      else await new Promise((r) => setImmediate(r));
    }
  };
  await Promise.all(Array.from({ length: options.workers }, worker));
  return outcomes;
}

/** One transfer between two random accounts; never rejects. */
export async function transferOnce(pool: Pool<object>, bank: Bank, tx: TxOptions | undefined, sleepMs: number): Promise<Outcome> {
  const op = nextOp++;
  const from = 1 + Math.floor(Math.random() * ACCOUNTS);
  const to = 1 + ((from + Math.floor(Math.random() * (ACCOUNTS - 1))) % ACCOUNTS);
  const amount = 1 + Math.floor(Math.random() * 50);
  let began = false;
  const startedAt = performance.now();
  try {
    await pool.withTx(async (conn) => {
      began = true;
      await bank.transfer(conn, op, from, to, amount, sleepMs);
    }, tx);
    return { op, kind: 'committed', code: undefined, message: undefined, causeCode: undefined, startedAt, endedAt: performance.now() };
  } catch (err) {
    const { kind, code } = classify(pool.adapter, err, began);
    const message = (err as { message?: unknown } | null)?.message;
    const causeCode = ((err as { cause?: { code?: unknown } } | null)?.cause as { code?: unknown } | undefined)?.code;
    return {
      op,
      kind,
      code,
      message: typeof message === 'string' ? message : String(err),
      causeCode: typeof causeCode === 'string' ? causeCode : undefined,
      startedAt,
      endedAt: performance.now(),
    };
  }
}

/** Counts by kind and by code. */
export function summarize(outcomes: readonly Outcome[]): Summary {
  const byKind: Record<OutcomeKind, number> = { committed: 0, rolled_back: 0, not_started: 0, unknown: 0, unclear: 0 };
  const byCode = new Map<string, number>();
  let longestMs = 0;
  for (const o of outcomes) {
    byKind[o.kind]++;
    if (o.code !== undefined) byCode.set(o.code, (byCode.get(o.code) ?? 0) + 1);
    longestMs = Math.max(longestMs, o.endedAt - o.startedAt);
  }
  return { attempted: outcomes.length, ...byKind, byCode: Object.fromEntries(byCode), longestMs, unclearSamples: outcomes.filter((o) => o.kind === 'unclear').slice(0, 5).map((o) => `${o.code ?? '?'}: ${o.message ?? ''}`) };
}

export interface Summary {
  readonly attempted: number;
  readonly committed: number;
  readonly rolled_back: number;
  readonly not_started: number;
  readonly unknown: number;
  readonly unclear: number;
  readonly byCode: Record<string, number>;
  /** Longest time one transfer took to settle (ms). */
  readonly longestMs: number;
  readonly unclearSamples: readonly string[];
}

/** Time from `faultEndedAt` to the first commit that started after it (ms), or undefined if none. */
export function recoveryMs(outcomes: readonly Outcome[], faultEndedAt: number): number | undefined {
  let first: number | undefined;
  for (const o of outcomes) {
    if (o.kind === 'committed' && o.startedAt >= faultEndedAt && (first === undefined || o.endedAt < first)) first = o.endedAt;
  }
  return first === undefined ? undefined : first - faultEndedAt;
}
