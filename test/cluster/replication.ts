/**
 * Private replication set-ups for the cluster tests, made the way the chaos suite makes private
 * servers (test/chaos/scenarios/private-server.ts): temp directories, free 127.0.0.1 ports.
 *
 * - PostgreSQL: a primary (`initdb`, trust auth, `wal_level=replica`) and a streaming replica made
 *   with `pg_basebackup -R` (it writes `standby.signal` and `primary_conninfo`), each on its own port.
 * - MariaDB: a primary with the binary log (`server_id=1`) and a replica (`server_id=2`,
 *   `read_only`) started with `CHANGE MASTER TO … ; START SLAVE` at the primary's binlog position.
 *
 * Each node can be stopped and started again (a replica that goes away and comes back) and a
 * PostgreSQL standby promoted. `destroy()` stops everything and removes the directories; an
 * exit hook stops what a killed test left running.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { createConnection, type Connection } from 'mysql2/promise';
import * as net from 'node:net';
import { isRoot, onExit, pgBin, pgTool, run, until } from '../chaos/scenarios/private-server';

/** `n` distinct free ports: all held open until all are known (two calls of freePort may agree). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return server;
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** Remove a directory; a server process that has just exited may still be closing files in it. */
async function removeDir(dir: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      rmSync(dir, { recursive: true, force: true });
      return;
    } catch (err) {
      if (attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export interface Node {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** A connection URL (no password: trust / empty root password). */
  readonly url: string;
  /** Stop it (`immediate`: as if the machine went away). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Start it again; resolves when it answers. */
  start(): Promise<void>;
  answers(): Promise<boolean>;
}

export interface ReplicaSet {
  readonly primary: Node;
  readonly replica: Node;
  /** Run one statement on a node over a fresh admin connection; returns the rows. */
  query(node: Node, sql: string): Promise<Record<string, unknown>[]>;
  /** Resolve when the replica has applied everything the primary has written so far. */
  caughtUp(timeoutMs?: number): Promise<void>;
  destroy(): Promise<void>;
}

async function pgQuery(node: Node, sql: string): Promise<Record<string, unknown>[]> {
  const c = new Client({ host: node.host, port: node.port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 5_000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query(sql)).rows as Record<string, unknown>[];
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function pgIsReady(port: number): Promise<boolean> {
  try {
    await run(path.join(pgBin(), 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port)], 5_000);
    return true;
  } catch {
    return false;
  }
}

function pgNode(name: string, dir: string, data: string, port: number): Node & { running: boolean } {
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40 -c shared_buffers=16MB -c wal_level=replica -c max_wal_senders=5 -c hot_standby=on -c wal_receiver_status_interval=1s`;
  const node = {
    name,
    host: '127.0.0.1',
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    running: false,
    async start(): Promise<void> {
      await pgTool('pg_ctl', ['-D', data, '-o', options, '-l', path.join(dir, `${name}.log`), '-w', '-t', '30', 'start']);
      node.running = true;
      await until(`${name} answers`, () => pgIsReady(port), 30_000);
    },
    async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
      await pgTool('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '30', 'stop']);
      node.running = false;
    },
    answers: () => pgIsReady(port),
  };
  return node;
}

/** A private PostgreSQL primary with one streaming replica. Takes a few seconds. */
export async function startPgReplicaSet(): Promise<ReplicaSet> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lp-cluster-pg-'));
  if (isRoot) {
    const uid = Number((await run('id', ['-u', 'postgres'])).trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).trim());
    chownSync(dir, uid, gid);
  }
  const [primaryPort = 0, replicaPort = 0] = await freePorts(2);
  const primary = pgNode('primary', dir, path.join(dir, 'primary'), primaryPort);
  const replica = pgNode('replica', dir, path.join(dir, 'replica'), replicaPort);
  const nodes = [primary, replica];
  const emergencyStop = (): void => {
    for (const node of nodes) {
      if (!node.running) continue;
      const args = ['-D', path.join(dir, node.name), '-m', 'immediate', '-w', '-t', '10', 'stop'];
      const file = path.join(pgBin(), 'pg_ctl');
      try {
        if (isRoot) execFileSync('runuser', ['-u', 'postgres', '--', file, ...args], { stdio: 'ignore' });
        else execFileSync(file, args, { stdio: 'ignore' });
      } catch {
        // best effort
      }
    }
  };
  onExit.add(emergencyStop);
  const set: ReplicaSet = {
    primary,
    replica,
    query: pgQuery,
    async caughtUp(timeoutMs = 10_000) {
      const [row] = await pgQuery(primary, 'SELECT pg_current_wal_lsn()::text AS lsn');
      const lsn = String(row?.lsn);
      await until(
        `the replica replays ${lsn}`,
        async () => {
          const [r] = await pgQuery(replica, `SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn AS ok`);
          return r?.ok === true;
        },
        timeoutMs,
      );
    },
    async destroy() {
      for (const node of nodes) {
        if (node.running) await node.stop('immediate').catch(() => undefined);
      }
      onExit.delete(emergencyStop);
      await removeDir(dir);
    },
  };
  try {
    await pgTool('initdb', ['-D', path.join(dir, 'primary'), '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'], 60_000);
    await primary.start();
    await pgTool('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', path.join(dir, 'replica'), '-R', '-X', 'stream', '--checkpoint=fast', '--no-sync'], 60_000);
    await replica.start();
    await until('the replica streams', async () => (await pgQuery(primary, 'SELECT count(*)::int AS n FROM pg_stat_replication'))[0]?.n === 1, 20_000);
  } catch (err) {
    await set.destroy().catch(() => undefined); // the set-up's own error is the one to see
    throw err;
  }
  return set;
}

async function myQuery(node: Node, sql: string): Promise<Record<string, unknown>[]> {
  const c: Connection = await createConnection({ host: node.host, port: node.port, user: 'root', connectTimeout: 5_000 });
  c.on('error', () => undefined);
  try {
    const [rows] = await c.query(sql);
    return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** A node's own temporary directory (created on first use). */
function tmpOf(dir: string, name: string): string {
  const tmp = path.join(dir, `${name}-tmp`);
  mkdirSync(tmp, { recursive: true });
  return tmp;
}

function mariaNode(name: string, dir: string, port: number, serverId: number, extra: readonly string[]): Node & { child?: ChildProcess; exited: Promise<void> } {
  const data = path.join(dir, name);
  const userArgs = isRoot ? ['--user=root'] : [];
  const ping = async (): Promise<boolean> => {
    try {
      await run('mysqladmin', ['--no-defaults', '--protocol=tcp', '-h', '127.0.0.1', '-P', String(port), '-uroot', '--connect-timeout=2', 'ping'], 5_000);
      return true;
    } catch {
      return false;
    }
  };
  const node: Node & { child?: ChildProcess; exited: Promise<void> } = {
    name,
    host: '127.0.0.1',
    port,
    url: `mysql://root@127.0.0.1:${port}/test`,
    exited: Promise.resolve(),
    async start() {
      const proc = spawn(
        '/usr/sbin/mariadbd',
        [
          '--no-defaults',
          `--datadir=${data}`,
          ...userArgs,
          `--port=${port}`,
          '--bind-address=127.0.0.1',
          `--socket=${path.join(dir, `${name}.sock`)}`,
          `--pid-file=${path.join(dir, `${name}.pid`)}`,
          `--server-id=${serverId}`,
          `--tmpdir=${tmpOf(dir, name)}`,
          '--innodb-buffer-pool-size=16M',
          '--innodb-log-file-size=8M',
          '--max-connections=60',
          '--skip-name-resolve',
          `--log-error=${path.join(dir, `${name}.err`)}`,
          ...extra,
        ],
        { stdio: 'ignore' },
      );
      node.child = proc;
      node.exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      await until(`${name} answers`, ping, 30_000);
    },
    async stop(mode: 'fast' | 'immediate' = 'fast') {
      const proc = node.child;
      if (proc === undefined || proc.exitCode !== null) return;
      if (mode === 'immediate') proc.kill('SIGKILL');
      else await run('mysqladmin', ['--no-defaults', '--protocol=tcp', '-h', '127.0.0.1', '-P', String(port), '-uroot', 'shutdown'], 30_000);
      await node.exited;
      delete node.child;
    },
    answers: ping,
  };
  return node;
}

/** A private MariaDB primary (binary log) with one replica. */
export async function startMariadbReplicaSet(): Promise<ReplicaSet> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lp-cluster-my-'));
  const [primaryPort = 0, replicaPort = 0] = await freePorts(2);
  const primary = mariaNode('primary', dir, primaryPort, 1, ['--log-bin=primary-bin', '--binlog-format=ROW']);
  const replica = mariaNode('replica', dir, replicaPort, 2, ['--skip-log-bin', '--read-only=1', '--relay-log=replica-relay', '--skip-slave-start']);
  const nodes = [primary, replica];
  const emergencyStop = (): void => {
    for (const node of nodes) if (node.child !== undefined && node.child.exitCode === null) node.child.kill('SIGKILL');
  };
  onExit.add(emergencyStop);
  const set: ReplicaSet = {
    primary,
    replica,
    query: myQuery,
    async caughtUp(timeoutMs = 10_000) {
      const [status] = await myQuery(primary, 'SHOW MASTER STATUS');
      const file = String(status?.File);
      const pos = Number(status?.Position);
      await until(
        `the replica applies ${file}:${pos}`,
        async () => {
          const [s] = await myQuery(replica, 'SHOW SLAVE STATUS');
          return s?.Relay_Master_Log_File === file && Number(s?.Exec_Master_Log_Pos) >= pos;
        },
        timeoutMs,
      );
    },
    async destroy() {
      for (const node of nodes) await node.stop('immediate').catch(() => undefined);
      onExit.delete(emergencyStop);
      await removeDir(dir);
    },
  };
  try {
    const userArgs = isRoot ? ['--user=root'] : [];
    // allSettled: a failed install must not leave the other one writing while the set-up is removed.
    const installs = await Promise.allSettled(
      nodes.map((node) =>
        // Its own tmpdir: the bootstrap's temporary tables in a shared /tmp collide with other
        // installs running at the same time ("Unknown table 'mysql.tmp_user_sys'").
        run('mariadb-install-db', ['--no-defaults', `--datadir=${path.join(dir, node.name)}`, `--tmpdir=${tmpOf(dir, node.name)}`, ...userArgs, '--auth-root-authentication-method=normal', '--skip-test-db'], 120_000),
      ),
    );
    for (const result of installs) if (result.status === 'rejected') throw result.reason;
    await Promise.all(nodes.map((node) => node.start()));
    const [status] = await myQuery(primary, 'SHOW MASTER STATUS');
    await myQuery(
      replica,
      `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${primaryPort}, MASTER_USER='root', MASTER_PASSWORD='', ` +
        `MASTER_LOG_FILE='${String(status?.File)}', MASTER_LOG_POS=${Number(status?.Position)}, MASTER_CONNECT_RETRY=1`,
    );
    await myQuery(replica, 'START SLAVE');
    await myQuery(primary, 'CREATE DATABASE IF NOT EXISTS test');
    await set.caughtUp(20_000);
  } catch (err) {
    await set.destroy().catch(() => undefined); // the set-up's own error is the one to see
    throw err;
  }
  return set;
}
