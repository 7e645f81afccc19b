/**
 * Drop-in for `mysql2/promise`'s `createPoolCluster`: a set of drop-in pools (one leasepool pool per
 * node, see pool.ts) with mysql2's API: `add`, `remove`, `of(pattern, selector)`,
 * `getConnection(pattern?, selector?)`, `end`, and the events `online`, `offline`, `remove`, `warn`.
 *
 * ```ts
 * import { createPoolCluster } from 'leasepool/adapters/mysql2';
 * const cluster = createPoolCluster({ restoreNodeTimeout: 1_000 });
 * cluster.add('MASTER', { host: 'db1', user: 'app', database: 'shop' });
 * cluster.add('REPLICA1', 'mysql://app@db2/shop');
 * const conn = await cluster.getConnection('REPLICA*', 'RR');
 * ```
 *
 * As in mysql2, a node whose `getConnection` fails `removeNodeErrorCount` times in a row (default 5)
 * is removed for good, unless `restoreNodeTimeout` is set: then it goes offline (`'offline'`) and is
 * tried again once that many milliseconds have passed; its first success brings it back
 * (`'online'`). With `canRetry` (default true) a failed `getConnection` is retried on another node
 * of the pattern, with a `'warn'` event. Every node has leasepool's guarantees (a connection released
 * in a transaction is rolled back, leak reports, metrics under the node's pool name).
 */
import { EventEmitter } from 'node:events';
import type { ExecuteValues, FieldPacket, QueryOptions, QueryResult, QueryValues } from 'mysql2';
import type { PoolConnection, PoolClusterOptions as Mysql2PoolClusterOptions } from 'mysql2/promise';
import { ConfigError, PoolClosedError } from '../../src/errors';
import { createPool, type Pool, type PoolOptions } from './pool';

/** mysql2's `PoolClusterOptions` (`canRetry`, `removeNodeErrorCount`, `restoreNodeTimeout`, `defaultSelector`). */
export interface PoolClusterOptions extends Mysql2PoolClusterOptions {}

/** How a namespace picks among the nodes its pattern matches. */
export type PoolClusterSelector = 'RR' | 'RANDOM' | 'ORDER';

/** Events of the drop-in cluster, as mysql2's. */
export interface PoolClusterEvents {
  /** A node that was offline served a connection again. */
  online: [nodeId: string];
  /** A node failed `removeNodeErrorCount` times; it is retried after `restoreNodeTimeout`. */
  offline: [nodeId: string];
  /** A node failed `removeNodeErrorCount` times and `restoreNodeTimeout` is 0: it is gone. */
  remove: [nodeId: string];
  /** A `getConnection` failed and is retried on another node. */
  warn: [error: Error];
}

interface ClusterNode {
  readonly id: string;
  readonly pool: Pool;
  errorCount: number;
  /** performance.now() until which the node is offline; 0 when online. */
  offlineUntil: number;
}

const SELECTORS: readonly PoolClusterSelector[] = ['RR', 'RANDOM', 'ORDER'];

function poolError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

function patternRegExp(pattern: string | RegExp): RegExp {
  if (pattern instanceof RegExp) return pattern;
  const source = pattern.replace(/([.+?^=!:${}()|[\]/\\])/g, '\\$1').replace(/\*/g, '.*');
  return new RegExp(`^${source}$`);
}

/** A leasepool pool name for a node id (`CLUSTER::1` is one already). */
function poolName(id: string): string {
  return id.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 64) || 'node';
}

/** The nodes matched by a pattern, with a selector: mysql2's `PoolNamespace`. */
export class PoolNamespace extends EventEmitter {
  #turn = 0;

  /** @internal use `cluster.of()` */
  constructor(
    private readonly cluster: PoolCluster,
    readonly pattern: string | RegExp,
    readonly selector: PoolClusterSelector,
  ) {
    super();
  }

  /** A connection from one node of the pattern; release it with `connection.release()`. */
  async getConnection(): Promise<PoolConnection> {
    const tried = new Set<string>();
    for (;;) {
      const node = this.#pick(tried);
      if (node === undefined) {
        const any = this.cluster.nodeIds(this.pattern, true).length > 0;
        throw any ? poolError('Pool does Not have online node.', 'POOL_NONEONLINE') : poolError('Pool does Not exist.', 'POOL_NOEXIST');
      }
      try {
        const conn = await node.pool.getConnection();
        this.cluster.succeeded(node);
        return conn;
      } catch (err) {
        this.cluster.failed(node);
        tried.add(node.id);
        const others = this.cluster.nodeIds(this.pattern).filter((id) => !tried.has(id));
        if (this.cluster.canRetry && others.length > 0) {
          this.cluster.emit('warn', err instanceof Error ? err : new Error(String(err)));
          continue;
        }
        throw err;
      }
    }
  }

  /** One statement on a connection of a node of the pattern, released after. Resolves `[rows, fields]`. */
  async query<T extends QueryResult>(sql: string | QueryOptions, values?: QueryValues): Promise<[T, FieldPacket[]]> {
    const conn = await this.getConnection();
    try {
      return (await conn.query(sql as string, values)) as [T, FieldPacket[]];
    } finally {
      conn.release();
    }
  }

  /** One prepared statement on a connection of a node of the pattern, released after. */
  async execute<T extends QueryResult>(sql: string | QueryOptions, values?: ExecuteValues): Promise<[T, FieldPacket[]]> {
    const conn = await this.getConnection();
    try {
      return (await conn.execute(sql as string, values)) as [T, FieldPacket[]];
    } finally {
      conn.release();
    }
  }

  #pick(tried: ReadonlySet<string>): ClusterNode | undefined {
    const ids = this.cluster.nodeIds(this.pattern).filter((id) => !tried.has(id));
    if (ids.length === 0) return undefined;
    let id: string | undefined;
    if (ids.length === 1 || this.selector === 'ORDER') id = ids[0];
    else if (this.selector === 'RANDOM') id = ids[Math.floor(Math.random() * ids.length)];
    else id = ids[this.#turn++ % ids.length];
    return id === undefined ? undefined : this.cluster.node(id);
  }
}

/** The drop-in pool cluster returned by {@link createPoolCluster}. */
export class PoolCluster extends EventEmitter<PoolClusterEvents> {
  readonly config: PoolClusterOptions;
  /** @internal */
  readonly canRetry: boolean;
  readonly #removeNodeErrorCount: number;
  readonly #restoreNodeTimeoutMs: number;
  readonly #defaultSelector: PoolClusterSelector;
  readonly #nodes = new Map<string, ClusterNode>();
  readonly #namespaces = new Map<string, PoolNamespace>();
  #lastId = 0;
  #closed = false;

  /** @internal use {@link createPoolCluster} */
  constructor(config: PoolClusterOptions = {}) {
    super();
    const problems: { field: string; problem: string }[] = [];
    for (const key of Object.keys(config)) {
      if (!['canRetry', 'removeNodeErrorCount', 'restoreNodeTimeout', 'defaultSelector'].includes(key)) problems.push({ field: key, problem: 'is not a PoolCluster option' });
    }
    const count = config.removeNodeErrorCount ?? 5;
    if (!Number.isInteger(count) || count < 1) problems.push({ field: 'removeNodeErrorCount', problem: 'must be an integer >= 1' });
    const restore = config.restoreNodeTimeout ?? 0;
    if (typeof restore !== 'number' || !Number.isFinite(restore) || restore < 0) problems.push({ field: 'restoreNodeTimeout', problem: 'must be a number of milliseconds >= 0' });
    const selector = (config.defaultSelector ?? 'RR').toUpperCase() as PoolClusterSelector;
    if (!SELECTORS.includes(selector)) problems.push({ field: 'defaultSelector', problem: `must be one of ${SELECTORS.join(', ')}` });
    if (problems.length > 0) throw new ConfigError(problems);
    this.config = config;
    this.canRetry = config.canRetry ?? true;
    this.#removeNodeErrorCount = count;
    this.#restoreNodeTimeoutMs = restore;
    this.#defaultSelector = selector;
  }

  /** Add a node (`add(config)` names it `CLUSTER::<n>`). Adding an id twice keeps the first, as mysql2. */
  add(config: PoolOptions | string): void;
  add(id: string, config: PoolOptions | string): void;
  add(idOrConfig: string | PoolOptions, maybeConfig?: PoolOptions | string): void {
    if (this.#closed) throw new PoolClosedError('PoolCluster');
    const [id, config] = maybeConfig === undefined ? [`CLUSTER::${++this.#lastId}`, idOrConfig] : [idOrConfig as string, maybeConfig];
    if (this.#nodes.has(id)) return;
    const options: PoolOptions = typeof config === 'string' ? { uri: config } : { ...config };
    options.leasepool = { name: poolName(id), ...options.leasepool };
    this.#nodes.set(id, { id, pool: createPool(options), errorCount: 0, offlineUntil: 0 });
  }

  /** Remove (and end) the nodes matching `pattern`. */
  remove(pattern: string | RegExp): void {
    for (const id of this.nodeIds(pattern, true)) this.#removeNode(id);
  }

  /** The nodes matching `pattern` (`*` wildcards, or a RegExp), picked with `selector`. */
  of(pattern: string | RegExp = '*', selector?: string): PoolNamespace {
    const chosen = (selector ?? this.#defaultSelector).toUpperCase() as PoolClusterSelector;
    if (!SELECTORS.includes(chosen)) throw new ConfigError([{ field: 'selector', problem: `must be one of ${SELECTORS.join(', ')}` }]);
    const key = `${String(pattern)}\u0000${chosen}`;
    let ns = this.#namespaces.get(key);
    if (ns === undefined) {
      ns = new PoolNamespace(this, pattern, chosen);
      this.#namespaces.set(key, ns);
    }
    return ns;
  }

  /** A connection from a node matching `pattern` (default all), picked with `selector`. */
  getConnection(pattern?: string | RegExp, selector?: string): Promise<PoolConnection> {
    if (this.#closed) return Promise.reject(new PoolClosedError('PoolCluster'));
    return this.of(pattern, selector).getConnection();
  }

  /** End every node's pool. */
  async end(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pools = [...this.#nodes.values()].map((n) => n.pool);
    this.#nodes.clear();
    await Promise.all(pools.map((p) => p.end()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.end();
  }

  /** The drop-in pool of one node (its stats, its leasepool pool), if it is still there. */
  pool(id: string): Pool | undefined {
    return this.#nodes.get(id)?.pool;
  }

  /** @internal Ids matching `pattern`; without `includeOffline`, those offline are left out. */
  nodeIds(pattern: string | RegExp, includeOffline = false): string[] {
    const re = patternRegExp(pattern);
    const at = performance.now();
    return [...this.#nodes.values()].filter((n) => re.test(n.id) && (includeOffline || n.offlineUntil <= at)).map((n) => n.id);
  }

  /** @internal */
  node(id: string): ClusterNode | undefined {
    return this.#nodes.get(id);
  }

  /** @internal A node served a connection: mysql2's `_decreaseErrorCount`. */
  succeeded(node: ClusterNode): void {
    node.errorCount = Math.max(0, Math.min(node.errorCount, this.#removeNodeErrorCount) - 1);
    if (node.offlineUntil !== 0) {
      node.offlineUntil = 0;
      this.emit('online', node.id);
    }
  }

  /** @internal A node failed a getConnection: mysql2's `_increaseErrorCount`. */
  failed(node: ClusterNode): void {
    node.errorCount++;
    if (node.errorCount < this.#removeNodeErrorCount) return;
    if (this.#restoreNodeTimeoutMs > 0) {
      node.offlineUntil = performance.now() + this.#restoreNodeTimeoutMs;
      this.emit('offline', node.id);
      return;
    }
    this.#removeNode(node.id);
    this.emit('remove', node.id);
  }

  #removeNode(id: string): void {
    const node = this.#nodes.get(id);
    if (node === undefined) return;
    this.#nodes.delete(id);
    void node.pool.end().catch(() => undefined);
  }
}

/** mysql2/promise's `createPoolCluster`, on leasepool pools. */
export function createPoolCluster(config?: PoolClusterOptions): PoolCluster {
  return new PoolCluster(config);
}
