/**
 * The workload: workers moving random amounts between random accounts in `withTx`, and the
 * faults injected on purpose, each with what must happen to it:
 *
 * - throw after the debit      → the transaction rolls back, the debit is undone;
 * - leaked lease               → `pool.acquire()` + BEGIN + an uncommitted deposit, never released:
 *                                reported by the leak detector (with the acquire stack), then
 *                                reclaimed by the pool (leaseTimeoutMs, or the GC) and rolled back;
 * - slow transaction           → outlives `withTx({ timeoutMs })`: revoked, its statement cancelled,
 *                                rolled back, the call rejects with LeaseTimeoutError;
 * - killed backend (pg/mysql)  → an admin connection kills the worker's backend mid-transaction:
 *                                the transfer fails, the broken connection is replaced, work goes on.
 */
import { setImmediate as yieldToEventLoop, setTimeout as delay } from 'node:timers/promises';
import type { DeadlineEvent, Lease, LeakEvent, ReclaimEvent } from '../../src/index';
import type { BankDb } from './db';
import { SUSPENSE_ACCOUNT } from './db';
import { firstLine } from './output';

export type FaultKind = 'throw' | 'leak' | 'slow' | 'kill';
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'slow', 'leak', 'throw'];

/** Deposit a leaked lease books (uncommitted) to the suspense account: if it ever committed, the total would be off. */
export const LEAKED_DEPOSIT = 1_000_000;

export interface WorkloadOptions {
  readonly table: string;
  readonly accounts: number;
  readonly workers: number;
  readonly rates: Readonly<Record<FaultKind, number>>;
  /** Deadline of a slow transaction (`withTx` timeoutMs). */
  readonly slowTimeoutMs: number;
  /** Quiet time after a fault of a kind before the next one (keeps a one-session PGlite moving). */
  readonly cooldownMs: Readonly<Record<FaultKind, number>>;
  /** `withTx` retries for serialization failures and deadlocks. */
  readonly retries: number;
}

/** Counts the summary and the status line are made of. */
export class Tally {
  committed = 0;
  declined = 0;
  readonly injected: Record<FaultKind, number> = { throw: 0, leak: 0, slow: 0, kill: 0 };
  /** Injected throws whose transaction rolled back (the call rejected with the injected error). */
  throwRolledBack = 0;
  /** Slow transactions revoked at their deadline. */
  slowCancelled = 0;
  /** Slow transactions that committed anyway (should stay 0). */
  slowCommitted = 0;
  /** Transfers whose backend was killed and that failed (rolled back by the server). */
  killFailed = 0;
  /** Transfers whose backend kill came too late to stop them (they committed). */
  killCommitted = 0;
  /** Leaked leases reported by the leak detector / taken back by the pool. */
  leaksReported = 0;
  leaksReclaimed = 0;
  /** Other leak reports and reclaims (a lease that really was held too long). */
  otherLeakReports = 0;
  deadlineReclaims = 0;
  retriesExhausted = 0;
  acquireTimeouts = 0;
  connectionErrors = 0;
  unexpected = 0;
  readonly unexpectedSamples: string[] = [];
  /** Leak reports, with the acquire stack, for the summary. */
  readonly leakReports: LeakEvent[] = [];
  readonly reclaimKinds = new Map<string, number>();
}

/** One transfer's fault and whether the transfer got as far as the fault. */
interface Run {
  readonly fault: FaultKind | undefined;
  ran: boolean;
}

/** Thrown by the injected fault after the debit. */
export class InjectedFault extends Error {
  override readonly name = 'InjectedFault';
}

/**
 * Which fault (if any) the next transfer carries. The first of each enabled kind is forced early so a
 * short run shows every one; at most one of each leak/slow/kill is under way at a time so the run
 * keeps making progress (on PGlite a leaked lease holds the only session until it is reclaimed).
 */
export class FaultPlan {
  readonly #rates: Readonly<Record<FaultKind, number>>;
  readonly #forcedAtMs: Readonly<Record<FaultKind, number>>;
  readonly #cooldownMs: Readonly<Record<FaultKind, number>>;
  readonly #startedAt = performance.now();
  readonly #done = new Set<FaultKind>();
  readonly #busy = new Set<FaultKind>();
  readonly #quietUntil: Record<FaultKind, number> = { throw: 0, leak: 0, slow: 0, kill: 0 };

  /**
   * @param forcedAtMs when (after the start) the first of each kind is forced
   * @param cooldownMs quiet time after one of a kind has run its course, before the next may start
   */
  constructor(
    rates: Readonly<Record<FaultKind, number>>,
    forcedAtMs: Readonly<Record<FaultKind, number>>,
    cooldownMs: Readonly<Record<FaultKind, number>>,
  ) {
    this.#rates = rates;
    this.#forcedAtMs = forcedAtMs;
    this.#cooldownMs = cooldownMs;
  }

  next(): FaultKind | undefined {
    const elapsed = performance.now() - this.#startedAt;
    for (const kind of FAULT_KINDS) {
      const rate = this.#rates[kind];
      if (rate <= 0 || this.#busy.has(kind) || performance.now() < this.#quietUntil[kind]) continue;
      const forced = !this.#done.has(kind) && elapsed >= this.#forcedAtMs[kind];
      if (forced || Math.random() < rate) {
        this.#done.add(kind);
        if (kind !== 'throw') this.#busy.add(kind);
        return kind;
      }
    }
    return undefined;
  }

  /** The transfer that drew this fault never reached it: draw it again (forced first ones included). */
  retract(kind: FaultKind): void {
    this.#done.delete(kind);
  }

  /** The fault of this kind under way has run its course. */
  finished(kind: FaultKind): void {
    if (this.#busy.delete(kind)) this.#quietUntil[kind] = performance.now() + this.#cooldownMs[kind];
  }

  busy(kind: FaultKind): boolean {
    return this.#busy.has(kind);
  }
}

/** Callbacks for lines worth showing while the run goes on. */
export interface WorkloadEvents {
  line(text: string): void;
}

export class Workload {
  readonly tally = new Tally();
  readonly #db: BankDb;
  readonly #opts: WorkloadOptions;
  readonly #plan: FaultPlan;
  readonly #events: WorkloadEvents;
  /** Ids of the leases leaked on purpose, until the pool reclaims them. */
  readonly #leaked = new Set<number>();
  /** Leaked leases still referenced (so that only leaseTimeoutMs, not the GC, can take them back). */
  readonly #forgotten = new Map<number, Lease>();
  readonly #firstShown = new Set<string>();
  #stopped = false;
  #workers: Promise<void>[] = [];

  constructor(db: BankDb, opts: WorkloadOptions, events: WorkloadEvents) {
    this.#db = db;
    this.#opts = opts;
    this.#events = events;
    const rates = { ...opts.rates, kill: db.backendIdSql === undefined ? 0 : opts.rates.kill };
    this.#plan = new FaultPlan(rates, { throw: 0, leak: 150, slow: 500, kill: 900 }, opts.cooldownMs);
    db.pool.on('leak', (event) => this.#onLeak(event));
    db.pool.on('reclaim', (event) => this.#onReclaim(event));
    db.pool.on('deadline', (event) => this.#onDeadline(event));
    db.pool.on('error', (err) => this.#onPoolError(err));
  }

  /** A leaked lease has not been reclaimed yet. */
  get leakOutstanding(): boolean {
    return this.#plan.busy('leak');
  }

  start(): void {
    for (let i = 0; i < this.#opts.workers; i++) this.#workers.push(this.#worker());
  }

  /** Stop taking new transfers; resolves when every worker finished its current one. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#workers);
  }

  async #worker(): Promise<void> {
    const { accounts } = this.#opts;
    while (!this.#stopped) {
      // PGlite answers without any I/O: a worker that never yields would starve timers, signals
      // and the /metrics server (every transfer would be a chain of microtasks).
      await yieldToEventLoop();
      if (this.#stopped) break;
      const from = 1 + Math.floor(Math.random() * accounts);
      let to = 1 + Math.floor(Math.random() * (accounts - 1));
      if (to >= from) to++;
      const amount = 1 + Math.floor(Math.random() * 100);
      const fault = this.#plan.next();
      if (fault !== undefined) this.tally.injected[fault]++;
      if (fault === 'leak') {
        await this.#leakLease().catch((err: unknown) => this.#classify(err, undefined));
        continue;
      }
      const run: Run = { fault, ran: false };
      try {
        const outcome = await this.#db.pool.withTx((conn, tx) => this.#transfer(conn, tx.signal, from, to, amount, run), {
          isolation: this.#db.isolation,
          retries: this.#opts.retries,
          ...(fault === 'slow' ? { timeoutMs: this.#opts.slowTimeoutMs } : {}),
        });
        if (outcome === 'declined') this.tally.declined++;
        else this.tally.committed++;
        if (run.ran && fault === 'slow') this.tally.slowCommitted++;
        if (run.ran && fault === 'kill') {
          this.tally.killCommitted++;
          this.#first('kill-late', '[fault] killed backend: the kill arrived after the transfer had finished; it committed');
        }
      } catch (err) {
        this.#classify(err, run.ran ? fault : undefined);
      } finally {
        if (fault !== undefined && !run.ran) this.#retract(fault);
        if (fault === 'slow' || fault === 'kill') this.#plan.finished(fault);
      }
    }
  }

  /** The transfer ended before reaching its fault (declined, retried away): it does not count. */
  #retract(fault: FaultKind): void {
    this.tally.injected[fault]--;
    this.#plan.retract(fault);
  }

  /** One transfer: lock both rows in id order, check funds, debit, (fault), credit. */
  async #transfer(conn: object, signal: AbortSignal, from: number, to: number, amount: number, run: Run): Promise<'done' | 'declined'> {
    const db = this.#db;
    const t = this.#opts.table;
    const locked = await db.query(conn, `SELECT id, balance FROM ${t} WHERE id IN ($1, $2) ORDER BY id FOR UPDATE`, [Math.min(from, to), Math.max(from, to)]);
    const source = locked.rows.find((row) => Number(row['id']) === from);
    if (source === undefined || BigInt(String(source['balance'])) < BigInt(amount)) return 'declined';
    await db.query(conn, `UPDATE ${t} SET balance = balance - $1 WHERE id = $2`, [amount, from]);
    const fault = run.fault;
    if (fault !== undefined) run.ran = true;
    if (fault === 'throw') throw new InjectedFault(`injected failure after debiting account ${from}`);
    if (fault === 'slow') await this.#slowStep(conn, signal);
    if (fault === 'kill') {
      const { rows } = await db.query(conn, db.backendIdSql as string);
      await db.killBackend(Number(rows[0]?.['id']));
    }
    await db.query(conn, `UPDATE ${t} SET balance = balance + $1 WHERE id = $2`, [amount, to]);
    return 'done';
  }

  /** Something slow inside the transaction, four times longer than its deadline allows. */
  async #slowStep(conn: object, signal: AbortSignal): Promise<void> {
    const ms = this.#opts.slowTimeoutMs * 4;
    if (this.#db.sleepSql !== undefined) {
      await this.#db.query(conn, this.#db.sleepSql, [ms / 1000]);
    } else {
      // PGlite runs statements on this thread: pg_sleep would freeze the whole process, so the slow
      // step here is a wait in JavaScript (a slow API call inside the transaction, say).
      await delay(ms, undefined, { signal });
    }
  }

  /**
   * The deliberate leak: acquire, open a transaction, book a deposit, never release. Two kinds, in
   * turn: a lease forgotten in a list (still reachable: only the leak detector and leaseTimeoutMs
   * can find it), and a lease simply dropped (unreachable: the garbage collector may find it first).
   */
  async #leakLease(): Promise<void> {
    const db = this.#db;
    let lease: Lease | undefined;
    try {
      lease = await db.pool.acquire();
    } catch (err) {
      this.#plan.finished('leak');
      throw err;
    }
    const id = lease.id;
    this.#leaked.add(id);
    const keep = this.tally.injected.leak % 2 === 1;
    if (keep) this.#forgotten.set(id, lease);
    try {
      await db.query(lease.conn, 'BEGIN');
      await db.query(lease.conn, `UPDATE ${this.#opts.table} SET balance = balance + $1 WHERE id = $2`, [LEAKED_DEPOSIT, SUSPENSE_ACCOUNT]);
    } catch (err) {
      // Reclaimed already (or the connection failed): the pool owns it now either way.
      this.#classify(err, undefined);
    }
    lease = undefined;
    this.#events.line(
      `[fault] leaked lease #${id}: BEGIN, uncommitted deposit of ${LEAKED_DEPOSIT} to account ${SUSPENSE_ACCOUNT}, never released; ` +
        (keep ? 'kept in a forgotten list (the leak detector and leaseTimeoutMs will find it)' : 'dropped (the GC may find it first)'),
    );
  }

  #onLeak(event: LeakEvent): void {
    this.tally.leakReports.push(event);
    if (this.#leaked.has(event.id)) {
      this.tally.leaksReported++;
      this.#events.line(`[leak] lease #${event.id} held ${event.ageMs} ms${event.inTransaction ? ' inside a transaction' : ''}: reported by the leak detector (acquire stack in the summary)`);
    } else {
      this.tally.otherLeakReports++;
      this.#events.line(`[leak] lease #${event.id} held ${event.ageMs} ms (not a deliberate leak: a lease really held that long): reported by the leak detector`);
    }
  }

  #onReclaim(event: ReclaimEvent): void {
    this.tally.reclaimKinds.set(event.kind, (this.tally.reclaimKinds.get(event.kind) ?? 0) + 1);
    this.#forgotten.delete(event.id);
    if (this.#leakReclaimed(event.id)) {
      this.#events.line(`[reclaim] leaked lease #${event.id} reclaimed (${event.kind}) after ${event.ageMs} ms: revoked, rolled back, connection closed`);
    } else {
      this.#first('reclaim-other', `[reclaim] lease #${event.id} reclaimed (${event.kind}, ${event.ageMs} ms): rolled back, connection closed`);
    }
  }

  /** A deadline the workload asked for (a slow transaction's timeoutMs), not a leak. */
  #onDeadline(event: DeadlineEvent): void {
    this.tally.reclaimKinds.set('deadline', (this.tally.reclaimKinds.get('deadline') ?? 0) + 1);
    this.#forgotten.delete(event.id);
    if (this.#leakReclaimed(event.id)) {
      this.#events.line(`[reclaim] leaked lease #${event.id} revoked at leaseTimeoutMs after ${event.ageMs} ms, before the leak detector saw it: rolled back, connection closed`);
    } else {
      this.tally.deadlineReclaims++;
      this.#first('reclaim-deadline', `[deadline] lease #${event.id} revoked at its ${event.timeoutMs} ms deadline (${event.ageMs} ms): statement cancelled if running, rolled back, connection closed; counted as kind deadline, not as a leak`);
    }
  }

  /** `id` was leaked on purpose: it is now taken back. */
  #leakReclaimed(id: number): boolean {
    if (!this.#leaked.delete(id)) return false;
    this.tally.leaksReclaimed++;
    this.#plan.finished('leak');
    return true;
  }

  #onPoolError(err: Error): void {
    this.tally.connectionErrors++;
    this.#first('pool-error', `[pool error] a connection failed (${firstLine(err.message)}): it is destroyed and replaced`);
  }

  #classify(err: unknown, fault: FaultKind | undefined): void {
    const code = (err as { code?: unknown } | null)?.code;
    if (fault === 'throw' && err instanceof InjectedFault) {
      this.tally.throwRolledBack++;
      this.#first('throw', `[fault] threw after the debit: transaction rolled back (${err.message})`);
      return;
    }
    if (fault === 'slow' && (code === 'LEASE_TIMEOUT' || code === 'LEASE_REVOKED')) {
      this.tally.slowCancelled++;
      this.#first('slow', `[fault] slow transaction past its ${this.#opts.slowTimeoutMs} ms deadline: ${firstLine((err as Error).message)}`);
      return;
    }
    if (fault === 'kill') {
      this.tally.killFailed++;
      this.#first('kill', `[fault] backend killed mid-transaction: the transfer failed (${firstLine(String((err as Error)?.message ?? err))}), the pool replaces the connection`);
      return;
    }
    if ((err as { attempts?: unknown } | null)?.attempts !== undefined || isSerializationFailure(err)) {
      this.tally.retriesExhausted++;
      return;
    }
    if (code === 'ACQUIRE_TIMEOUT') {
      this.tally.acquireTimeouts++;
      return;
    }
    if (code === 'POOL_CLOSED' && this.#stopped) return;
    this.tally.unexpected++;
    const text = firstLine(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    if (this.tally.unexpectedSamples.length < 5) this.tally.unexpectedSamples.push(text);
    this.#events.line(`[error] unexpected: ${text}`);
  }

  #first(key: string, text: string): void {
    if (this.#firstShown.has(key)) return;
    this.#firstShown.add(key);
    this.#events.line(text);
  }
}

function isSerializationFailure(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  return e?.code === '40001' || e?.code === '40P01' || e?.errno === 1213;
}
