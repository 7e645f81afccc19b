/**
 * One pooled "connection" of the PGlite adapter: a handle on the one shared PGlite instance, which
 * refuses use once the pool closed it and yields a turn of the event loop now and then (PGlite does
 * no I/O: a loop of statements would otherwise starve timers, signals and HTTP).
 */
import type { PGlite, QueryOptions, Results } from '@electric-sql/pglite';
import type { PgliteInstance } from './config';

export const CLOSED_MESSAGE = 'leasepool: this PGlite connection was closed';

/** Messages PGlite (or its Emscripten runtime) uses when the instance is gone. */
export const FATAL_MESSAGES = ['PGlite is closed', 'PGlite is closing', CLOSED_MESSAGE];

export let markClosed: (conn: PgliteConnection) => boolean;
export let lastCallFailed: (conn: PgliteConnection) => boolean;

/**
 * One pooled "connection": a handle on the shared PGlite instance. `query` and `exec` behave as
 * PGlite's own (`{ rows, fields, affectedRows, … }`); once the pool closed this handle they throw.
 */
export class PgliteConnection {
  readonly #db: PgliteInstance;
  #closed = false;
  #lastFailed = false;

  static {
    markClosed = (conn) => {
      const wasOpen = !conn.#closed;
      conn.#closed = true;
      return wasOpen;
    };
    lastCallFailed = (conn) => conn.#lastFailed;
  }

  /** @internal Created by the adapter's `connect`. */
  constructor(db: PgliteInstance) {
    this.#db = db;
  }

  /**
   * The underlying PGlite instance, for APIs the handle does not wrap (`listen`, `describeQuery`,
   * `dumpDataDir` …). It is shared by every handle: never `close()` it, and do not run
   * `transaction()` on it inside a leasepool transaction.
   */
  get pglite(): PGlite {
    return this.#db as PGlite;
  }

  /** True once the pool closed this handle. */
  get closed(): boolean {
    return this.#closed;
  }

  /** One statement, extended protocol, `$1`-style parameters: PGlite's `query`. */
  async query<T = Record<string, unknown>>(text: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>> {
    if (this.#closed) throw new Error(CLOSED_MESSAGE);
    const turn = nextTurn();
    if (turn !== undefined) await turn;
    try {
      const result = await this.#db.query<T>(text, params, options);
      this.#lastFailed = false;
      return result;
    } catch (err) {
      this.#lastFailed = true;
      throw err;
    }
  }

  /** Any number of statements, simple protocol, no parameters: PGlite's `exec`. */
  async exec(text: string, options?: QueryOptions): Promise<Results[]> {
    if (this.#closed) throw new Error(CLOSED_MESSAGE);
    const turn = nextTurn();
    if (turn !== undefined) await turn;
    try {
      const result = await this.#db.exec(text, options);
      this.#lastFailed = false;
      return result;
    } catch (err) {
      this.#lastFailed = true;
      throw err;
    }
  }
}

/**
 * PGlite does no I/O: a loop of statements would run on promise jobs alone and never let timers
 * (lease deadlines, leak detection), signals or HTTP requests in. A statement yields one turn of
 * the event loop when the last yield is more than `YIELD_EVERY_MS` ago: starvation is bounded,
 * and a tight loop pays for a turn only every few milliseconds (a turn per statement cost 3x).
 */
const YIELD_EVERY_MS = 4;
let lastTurnAt = 0;

function nextTurn(): Promise<void> | undefined {
  if (performance.now() - lastTurnAt < YIELD_EVERY_MS) return undefined;
  return new Promise((resolve) =>
    setImmediate(() => {
      lastTurnAt = performance.now();
      resolve();
    }),
  );
}

