/**
 * Start PgBouncer as a child process in front of the shared PostgreSQL: transaction pooling,
 * 127.0.0.1:<free port>, trust auth with an auth_file for the server's user, a temp directory for
 * config, log and pid. `scripts/ensure-tools.sh` installs the binary (no service started).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { freePort } from './private-server';
import type { Endpoint } from './targets';

export interface PgBouncer {
  readonly port: number;
  /** Where the pool connects: same user and database as the server, PgBouncer's port. */
  readonly endpoint: Endpoint;
  readonly url: string;
  /** PgBouncer's log so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

export function pgbouncerBinary(): string {
  for (const candidate of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer']) {
    if (existsSync(candidate)) return candidate;
  }
  try {
    return execFileSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('pgbouncer is not installed: run scripts/ensure-tools.sh');
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface PgBouncerOptions {
  /** Server connections per user/database pair (default 8: fewer than the clients, so they really share). */
  readonly poolSize?: number;
  /** `ignore_startup_parameters` (default: `extra_float_digits`). */
  readonly ignoreStartupParameters?: readonly string[];
}

export async function startPgBouncer(server: Endpoint, options: PgBouncerOptions = {}): Promise<PgBouncer> {
  const bin = pgbouncerBinary();
  const dir = mkdtempSync(path.join(tmpdir(), 'lp-chaos-pgbouncer-'));
  const port = await freePort();
  const logFile = path.join(dir, 'pgbouncer.log');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  writeFileSync(path.join(dir, 'userlist.txt'), `"${server.user}" ""\n`);
  writeFileSync(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `${server.database} = host=${server.host} port=${server.port} dbname=${server.database}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      'max_client_conn = 200',
      `default_pool_size = ${options.poolSize ?? 8}`,
      `ignore_startup_parameters = ${(options.ignoreStartupParameters ?? ['extra_float_digits']).join(',')}`,
      `logfile = ${logFile}`,
      `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
      'server_reset_query =',
      'log_connections = 0',
      'log_disconnections = 0',
      '',
    ].join('\n'),
  );
  if (isRoot) {
    // PgBouncer refuses to run as root: it switches to the postgres user (-u), which must read
    // its config and write its log.
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    for (const f of ['', 'userlist.txt', 'pgbouncer.ini']) chownSync(path.join(dir, f), uid, gid);
  }
  const child: ChildProcess = spawn(bin, [...(isRoot ? ['-u', 'postgres'] : []), path.join(dir, 'pgbouncer.ini')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const log = (): string => {
    try {
      return `${stderr}${readFileSync(logFile, 'utf8')}`;
    } catch {
      return stderr;
    }
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const text = log();
      await stop();
      throw new Error(`pgbouncer did not start on port ${port}:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const endpoint: Endpoint = { host: '127.0.0.1', port, user: server.user, database: server.database };
  return { port, endpoint, url: `postgres://${encodeURIComponent(server.user)}@127.0.0.1:${port}/${server.database}`, log, stop };
}
