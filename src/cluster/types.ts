/**
 * The public shapes of a cluster (`createCluster`): options, routing targets, host states, events.
 * A leaf module of types.
 */
import type { Adapter, QueryFunction } from '../adapter';
import type { MetricsOptions } from '../metrics';
import type { PoolOptions } from '../options';
import type { Logger } from '../logger';

/**
 * libpq's `target_session_attrs`, decided by asking each server (`Adapter.sessionRole`), never by
 * trusting the configuration:
 * - `read-write`: sessions accept writes (PostgreSQL `transaction_read_only` off; MariaDB not `read_only`);
 * - `read-only`: sessions are read-only;
 * - `primary`: not in recovery (not a replica);
 * - `standby`: in recovery (a replica); fails when none is healthy;
 * - `prefer-standby`: a standby if one is healthy (and within `maxLagMs`), else any host;
 * - `any`: any healthy host.
 */
export type TargetSessionAttrs = 'read-write' | 'read-only' | 'primary' | 'standby' | 'prefer-standby' | 'any';

/**
 * Where a call goes: a `target_session_attrs` mode, or `'replica'`: a healthy standby within
 * `maxLagMs`, and when there is none, the primary (or a `ConnectError`, with
 * `replicaFallback: 'fail'`).
 */
export type ClusterTarget = TargetSessionAttrs | 'replica';

/** One server of a cluster. */
export interface ClusterHost<C extends object, Q extends QueryFunction = QueryFunction> {
  /** Its adapter (`pgAdapter(url)`, `mysqlAdapter(url)`); it must implement `sessionRole`. */
  readonly adapter: Adapter<C, Q>;
  /**
   * The host's name: the `host` part of its pool's name (`<cluster>:<host>`, the `pool` label of
   * its metrics) and the `host` label of the cluster's metrics. [A-Za-z0-9_.:-], at most 40
   * characters. Default: the adapter's `address:port`.
   */
  readonly name?: string | undefined;
  /**
   * The name of this host's pool (the `pool` label of its metrics and of the cluster series about
   * it, the prefix of its log lines). Default `<cluster>:<host>`. Set it to keep the name a single
   * pool had before it became a cluster host (dashboards and alerts keep working).
   */
  readonly poolName?: string | undefined;
  /** Pool options of this host only, over the cluster's `pool` options (`name` is set by the cluster). */
  readonly pool?: Omit<PoolOptions, 'name'> | undefined;
}

/** Options of {@link createCluster}. Durations are milliseconds, as the names say. */
export interface ClusterOptions<C extends object, Q extends QueryFunction = QueryFunction> {
  /** The servers, primary and replicas in any order: who is what is asked, not configured. */
  readonly hosts: readonly ClusterHost<C, Q>[];
  /** Cluster name: the prefix of each host pool's name (`<name>:<host>`) and the `cluster` label of cluster metrics. Default `'cluster'`. */
  readonly name?: string | undefined;
  /** Pool options for every host pool (`name` is set per host: `<cluster>:<host>`; `metrics` and `logger` are the cluster's). */
  readonly pool?: Omit<PoolOptions, 'name' | 'metrics' | 'logger'> | undefined;
  /** Prometheus metrics of every host pool and of the cluster, in this prom-client registry. */
  readonly metrics?: MetricsOptions | false | undefined;
  readonly logger?: Logger | undefined;
  /** How often a healthy host is asked its role and lag. Default 1 000. */
  readonly healthCheckIntervalMs?: number | undefined;
  /** Bound on one role probe (acquire + query). Default 2 000. */
  readonly probeTimeoutMs?: number | undefined;
  /** A failed host is probed again after a backoff doubling from 100 ms up to this. Default 5 000. */
  readonly probeBackoffMaxMs?: number | undefined;
  /** A replica whose lag is above this is skipped for reads. `Infinity`: never skipped. Default `Infinity`. */
  readonly maxLagMs?: number | undefined;
  /** `target: 'replica'` (and `readOnly` transactions) with no healthy replica: `'primary'` (default) or `'fail'`. */
  readonly replicaFallback?: 'primary' | 'fail' | undefined;
  /** Where `withTx(fn, { readOnly: true })` goes. Default `'replica'`. */
  readonly readOnlyTarget?: ClusterTarget | undefined;
  /**
   * Read-your-writes: inside `cluster.session(fn)`, reads after a write stay on the primary for
   * this long (`Infinity`: for the rest of the session; `0`: off). Default `Infinity`.
   */
  readonly readYourWritesMs?: number | undefined;
  /**
   * PostgreSQL: instead of keeping reads after a write on the primary, send them to a replica that
   * has replayed the write (`pg_last_wal_replay_lsn()` past the primary's LSN after the write),
   * waiting up to this long for one; past it, the read goes to the primary. `0` (default): off.
   */
  readonly waitForReplayMs?: number | undefined;
  /**
   * How long a call that needs the primary waits for one when none is known (after a failover, while
   * a standby is promoted) before it fails with `ConnectError`. Default 30 000.
   */
  readonly failoverTimeoutMs?: number | undefined;
}

/** Options of `cluster.withTx` / `cluster.withLease`: where the call goes, over the pool's own options. */
export interface ClusterCallOptions {
  /** Where the call goes. Default: `'read-write'`, or `readOnlyTarget` for `readOnly` transactions. */
  readonly target?: ClusterTarget | undefined;
}

/** What the cluster knows about one host (`cluster.hosts()`). */
export interface HostInfo {
  readonly name: string;
  /** The name of the host's pool (`<cluster>:<host>` unless `poolName` was given). */
  readonly pool: string;
  /** `'primary'`, `'standby'`, or `'unknown'` before it first answered. */
  readonly role: 'primary' | 'standby' | 'unknown';
  readonly readOnly: boolean;
  /** Answered its last probe (and no call found it gone since). */
  readonly healthy: boolean;
  /** Replication lag (0 on the primary); `null` before it is known. */
  readonly lagMs: number | null;
  /** Probes failed in a row. */
  readonly failures: number;
}

/** Events of a cluster. */
export interface ClusterEvents {
  /** A host stopped answering (taken out of routing). */
  hostDown: [{ readonly host: string; readonly error: Error }];
  /** A host answers (its first probe, or again after it was down): in routing. */
  hostUp: [{ readonly host: string; readonly role: HostInfo['role'] }];
  /** A different host is now the primary (`from` undefined at start). */
  primaryChanged: [{ readonly from: string | undefined; readonly to: string }];
  error: [Error];
}
