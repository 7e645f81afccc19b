/**
 * An in-memory adapter for the core's unit tests and the pure-cycle benchmark. Never a stand-in
 * for a driver in integration tests. Its connections understand a tiny statement language:
 *   BEGIN / START TRANSACTION, COMMIT, ROLLBACK, SAVEPOINT x, RELEASE SAVEPOINT x, ROLLBACK TO SAVEPOINT x
 *   SLEEP <ms>          resolves after ms (cancel() interrupts it)
 *   FAIL                rejects with a non-fatal error (a failed transaction stays failed)
 *   FATAL               rejects with a fatal error and kills the connection
 *   RETRYABLE           rejects with a retryable error (like 40001)
 *   anything else       resolves { rows: [] }
 * Faults are injected through the `FakeDb` handle.
 */
import type { Adapter, BeginOptions, ConnectionEvents, TxStatus } from '../../src/adapter';

export class FakeError extends Error {
  constructor(
    message: string,
    readonly fatal: boolean,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

let nextConnectionId = 1;

export class FakeConnection {
  readonly id = nextConnectionId++;
  status: TxStatus = 'idle';
  closed = false;
  dead = false;
  readonly log: string[] = [];
  readonly events: ConnectionEvents;
  private readonly db: FakeDb;
  private sleeping: { timer: NodeJS.Timeout; reject: (err: Error) => void } | undefined;

  constructor(db: FakeDb, events: ConnectionEvents) {
    this.db = db;
    this.events = events;
  }

  query(sql: string): Promise<{ rows: unknown[] }> {
    if (this.dead || this.closed) return Promise.reject(new FakeError('connection is closed', true, false));
    if (this.db.recordStatements) this.log.push(sql);
    this.db.statements++;
    const upper = sql.trim().toUpperCase();
    if (this.status === 'failed' && !upper.startsWith('ROLLBACK')) {
      return Promise.reject(new FakeError('current transaction is aborted', false, false));
    }
    if (upper === 'BEGIN' || upper.startsWith('BEGIN ') || upper.startsWith('START TRANSACTION')) this.status = 'in_tx';
    else if (upper === 'COMMIT') {
      if (this.db.failCommit !== undefined) {
        const err = this.db.failCommit;
        this.db.failCommit = undefined;
        if (err.fatal) this.kill(err);
        else this.status = 'idle';
        return Promise.reject(err);
      }
      this.status = 'idle';
    } else if (upper === 'ROLLBACK') {
      if (this.db.failRollback) return Promise.reject(new FakeError('rollback failed', false, false));
      this.status = 'idle';
    } else if (upper.startsWith('ROLLBACK TO SAVEPOINT')) this.status = 'in_tx';
    else if (upper.startsWith('SLEEP ')) {
      const ms = Number(upper.slice(6));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.sleeping = undefined;
          resolve({ rows: [] });
        }, ms);
        this.sleeping = { timer, reject };
      });
    } else if (upper === 'FAIL') {
      if (this.status === 'in_tx') this.status = 'failed';
      return Promise.reject(new FakeError('statement failed', false, false));
    } else if (upper === 'FATAL') {
      const err = new FakeError('connection lost', true, false);
      this.kill(err);
      return Promise.reject(err);
    } else if (upper === 'RETRYABLE') {
      if (this.status === 'in_tx') this.status = 'failed';
      return Promise.reject(new FakeError('could not serialize access', false, true));
    }
    return Promise.resolve(EMPTY_RESULT);
  }

  /** A second statement method, like mysql2's execute. */
  execute(sql: string): Promise<{ rows: unknown[] }> {
    return this.query(sql);
  }

  /** Like a driver's end(): the guard must intercept it. */
  end(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  /** Simulate the server cancelling the running statement. */
  cancelRunning(): void {
    const sleeping = this.sleeping;
    if (sleeping === undefined) return;
    clearTimeout(sleeping.timer);
    this.sleeping = undefined;
    if (this.status === 'in_tx') this.status = 'failed';
    sleeping.reject(new FakeError('canceling statement due to user request', false, false));
  }

  /** Simulate the backend dying: the driver emits 'error'. */
  kill(err: Error = new FakeError('terminating connection due to administrator command', true, false)): void {
    if (this.dead) return;
    this.dead = true;
    this.events.onError(err);
  }
}

const EMPTY_RESULT = Object.freeze({ rows: Object.freeze([]) as unknown as unknown[] });

export interface FakeDbOptions {
  /** Delay before a connect resolves. */
  connectDelayMs?: number;
  /** Upper bound on connections; models PGlite's single session. */
  maxConnections?: number;
  /** Record every statement per connection (off in benchmarks). */
  recordStatements?: boolean;
  /** Implement txStatus (default true). */
  reportsTxStatus?: boolean;
}

/** The fake database: counters, fault switches and every connection made. */
export class FakeDb {
  connectDelayMs: number;
  /** Errors the next connects reject with, in order. */
  readonly connectFailures: Error[] = [];
  /** Errors the next connects throw synchronously (an adapter breaking the contract), in order. */
  readonly syncConnectFailures: Error[] = [];
  /** Connects hang until their signal aborts while true (a blackholed server). */
  blackhole = false;
  failRollback = false;
  failReset = false;
  failCommit: FakeError | undefined = undefined;
  recordStatements: boolean;
  statements = 0;
  connectAttempts = 0;
  readonly connections: FakeConnection[] = [];
  readonly cancelled: number[] = [];
  readonly resets: number[] = [];

  constructor(options: FakeDbOptions = {}) {
    this.connectDelayMs = options.connectDelayMs ?? 0;
    this.recordStatements = options.recordStatements ?? true;
  }

  get open(): FakeConnection[] {
    return this.connections.filter((c) => !c.closed);
  }
}

export function fakeAdapter(options: FakeDbOptions = {}): Adapter<FakeConnection> & { readonly db: FakeDb } {
  const db = new FakeDb(options);
  const reportsTxStatus = options.reportsTxStatus ?? true;
  const adapter: Adapter<FakeConnection> & { readonly db: FakeDb } = {
    db,
    name: 'fake',
    target: 'memory:0/fake',
    maxConnections: options.maxConnections,
    sql: {
      begin(opts: BeginOptions): readonly string[] {
        const parts = ['BEGIN'];
        if (opts.isolation !== undefined) parts.push(`ISOLATION LEVEL ${opts.isolation.toUpperCase()}`);
        if (opts.readOnly === true) parts.push('READ ONLY');
        if (opts.readOnly === false) parts.push('READ WRITE');
        if (opts.deferrable === true) parts.push('DEFERRABLE');
        return [parts.join(' ')];
      },
      commit: 'COMMIT',
      rollback: 'ROLLBACK',
      savepoint: (name) => `SAVEPOINT ${name}`,
      releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
      rollbackToSavepoint: (name) => `ROLLBACK TO SAVEPOINT ${name}`,
    },
    connect(signal: AbortSignal, events: ConnectionEvents): Promise<FakeConnection> {
      const syncFailure = db.syncConnectFailures.shift();
      if (syncFailure !== undefined) {
        db.connectAttempts++;
        throw syncFailure;
      }
      return connectAsync(signal, events);
    },
    close,
    async validate(conn: FakeConnection): Promise<void> {
      await conn.query('SELECT 1');
    },
    async exec(conn: FakeConnection, sql: string): Promise<void> {
      await conn.query(sql);
    },
    txStatus: reportsTxStatus ? (conn: FakeConnection) => conn.status : undefined,
    isFatal: (err: unknown) => err instanceof FakeError && err.fatal,
    isRetryable: (err: unknown) => err instanceof FakeError && err.retryable,
    async cancel(conn: FakeConnection): Promise<void> {
      db.cancelled.push(conn.id);
      conn.cancelRunning();
    },
    async reset(conn: FakeConnection): Promise<void> {
      if (db.failReset) throw new FakeError('reset failed', false, false);
      db.resets.push(conn.id);
    },
    lifecycleMethods: { release: ['release'], destroy: ['end', 'destroy'] },
  };
  async function close(conn: FakeConnection): Promise<void> {
    conn.closed = true;
  }
  async function connectAsync(signal: AbortSignal, events: ConnectionEvents): Promise<FakeConnection> {
    db.connectAttempts++;
    const failure = db.connectFailures.shift();
    if (db.blackhole) {
      await new Promise<void>((_, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    }
    if (db.connectDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, db.connectDelayMs));
    if (failure !== undefined) throw failure;
    const conn = new FakeConnection(db, events);
    db.connections.push(conn);
    return conn;
  }
  return adapter;
}
