/**
 * A private, throw-away database server for the restart scenario: a PostgreSQL cluster made with
 * `initdb` (run with `pg_ctl`), or a MariaDB data directory made with `mariadb-install-db` (run as
 * a `mariadbd` child process), each in a temp directory on a free 127.0.0.1 port.
 *
 * Why not restart the shared servers: every other test file uses them at the same time, and a
 * restart would break those. A private server of the same installed version gives the same proof
 * (the server process really goes away: sessions get the admin-shutdown error or a closed socket,
 * new connects are refused, then it comes back) and nobody else notices. `destroy()` stops it and
 * removes the directory; call it in `finally`.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, chownSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Endpoint } from './targets';

export interface PrivateServer {
  readonly kind: 'postgres' | 'mariadb';
  readonly endpoint: Endpoint;
  /** Stop the server (sessions are ended by the server itself). Resolves when it is down. */
  stop(): Promise<void>;
  /** Start it again; resolves when it accepts connections. */
  start(): Promise<void>;
  /** True when a TCP connect to its port succeeds and the server answers a ping. */
  answers(): Promise<boolean>;
  /** Stop (if running) and delete its data. Never rejects. */
  destroy(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function run(file: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, [...args], { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(file)} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** The newest installed PostgreSQL's bin directory. */
export function pgBin(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  const version = versions[0];
  if (version === undefined) throw new Error(`no PostgreSQL installation under ${base}`);
  return path.join(base, version, 'bin');
}

/** Run a PostgreSQL tool as the `postgres` OS user when we are root (initdb and postgres refuse root). */
export function pgTool(tool: string, args: readonly string[], timeoutMs?: number): Promise<string> {
  const file = path.join(pgBin(), tool);
  return isRoot ? run('runuser', ['-u', 'postgres', '--', file, ...args], timeoutMs) : run(file, args, timeoutMs);
}

/**
 * Last resort if the process exits without `destroy()` (a test killed by its timeout): stop what
 * is still running, synchronously, so no private server outlives the test run.
 */
export const onExit = new Set<() => void>();
process.once('exit', () => {
  for (const stop of onExit) {
    try {
      stop();
    } catch {
      // best effort
    }
  }
});

export async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tcpAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * A private PostgreSQL cluster (database `postgres`, user `postgres`): trust auth, or with
 * `password`, SCRAM-SHA-256 over TCP for that password (the socket stays trust).
 */
export async function startPrivatePostgres(auth: { readonly password?: string } = {}): Promise<PrivateServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lp-chaos-pg-'));
  if (isRoot) chownSync(dir, Number(await run('id', ['-u', 'postgres']).then((s) => s.trim())), Number(await run('id', ['-g', 'postgres']).then((s) => s.trim())));
  const data = path.join(dir, 'data');
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40 -c shared_buffers=16MB`;
  let running = false;
  const pgIsReady = async (): Promise<boolean> => {
    try {
      await run(path.join(pgBin(), 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port)], 5_000);
      return true;
    } catch {
      return false;
    }
  };
  const emergencyStop = (): void => {
    if (!running) return;
    const args = ['-D', data, '-m', 'immediate', '-w', '-t', '10', 'stop'];
    const file = path.join(pgBin(), 'pg_ctl');
    if (isRoot) execFileSync('runuser', ['-u', 'postgres', '--', file, ...args], { stdio: 'ignore' });
    else execFileSync(file, args, { stdio: 'ignore' });
  };
  onExit.add(emergencyStop);
  const server: PrivateServer = {
    kind: 'postgres',
    endpoint: { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' },
    async start() {
      await pgTool('pg_ctl', ['-D', data, '-o', options, '-l', path.join(dir, 'log'), '-w', '-t', '30', 'start']);
      running = true;
      await until('the private PostgreSQL answers', pgIsReady, 30_000);
    },
    async stop() {
      // fast: the server ends every session with 57P01 admin_shutdown, like a restart would.
      await pgTool('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop']);
      running = false;
    },
    answers: pgIsReady,
    async destroy() {
      if (running) await pgTool('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop']).catch(() => undefined);
      running = false;
      onExit.delete(emergencyStop);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    const authArgs = ['-A', 'trust'];
    if (auth.password !== undefined) {
      const pwfile = path.join(dir, 'pwfile');
      writeFileSync(pwfile, `${auth.password}\n`, { mode: 0o600 });
      if (isRoot) chownSync(pwfile, Number((await run('id', ['-u', 'postgres'])).trim()), Number((await run('id', ['-g', 'postgres'])).trim()));
      authArgs.push('--auth-host=scram-sha-256', `--pwfile=${pwfile}`);
    }
    await pgTool('initdb', ['-D', data, ...authArgs, '-U', 'postgres', '--no-sync', '-E', 'UTF8'], 60_000);
    await server.start();
  } catch (err) {
    await server.destroy();
    throw err;
  }
  return server;
}

/** A private MariaDB server (user `root`, no password, database `test`). */
export async function startPrivateMariadb(): Promise<PrivateServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lp-chaos-my-'));
  const data = path.join(dir, 'data');
  const socketPath = path.join(dir, 'sock');
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const userArgs = isRoot ? ['--user=root'] : [];
  const ping = async (): Promise<boolean> => {
    try {
      await run('mysqladmin', ['--no-defaults', '--protocol=tcp', '-h', '127.0.0.1', '-P', String(port), '-uroot', '--connect-timeout=2', 'ping'], 5_000);
      return true;
    } catch {
      return false;
    }
  };
  const emergencyStop = (): void => {
    if (child !== undefined && child.exitCode === null) child.kill('SIGKILL');
  };
  onExit.add(emergencyStop);
  const server: PrivateServer = {
    kind: 'mariadb',
    endpoint: { host: '127.0.0.1', port, user: 'root', database: 'test' },
    async start() {
      const proc = spawn(
        '/usr/sbin/mariadbd',
        [
          '--no-defaults',
          `--datadir=${data}`,
          ...userArgs,
          `--port=${port}`,
          '--bind-address=127.0.0.1',
          `--socket=${socketPath}`,
          `--pid-file=${path.join(dir, 'pid')}`,
          '--skip-log-bin',
          '--innodb-buffer-pool-size=16M',
          '--innodb-log-file-size=8M',
          '--max-connections=60',
          `--log-error=${path.join(dir, 'err.log')}`,
        ],
        { stdio: 'ignore' },
      );
      child = proc;
      exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      await until('the private MariaDB answers', ping, 30_000);
    },
    async stop() {
      // Like `mysqladmin -uroot shutdown` on the real one; then wait for the process to exit.
      await run('mysqladmin', ['--no-defaults', '--protocol=tcp', '-h', '127.0.0.1', '-P', String(port), '-uroot', 'shutdown'], 30_000);
      await exited;
      child = undefined;
    },
    answers: ping,
    async destroy() {
      if (child !== undefined && child.exitCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      child = undefined;
      onExit.delete(emergencyStop);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await run(
      'mariadb-install-db',
      ['--no-defaults', `--datadir=${data}`, ...userArgs, '--auth-root-authentication-method=normal', '--skip-test-db'],
      120_000,
    );
    await server.start();
    await run('mysql', ['--no-defaults', '--protocol=tcp', '-h', '127.0.0.1', '-P', String(port), '-uroot', '-e', 'CREATE DATABASE IF NOT EXISTS test'], 10_000);
  } catch (err) {
    await server.destroy();
    throw err;
  }
  return server;
}

export function startPrivateServer(kind: 'postgres' | 'mariadb'): Promise<PrivateServer> {
  return kind === 'postgres' ? startPrivatePostgres() : startPrivateMariadb();
}
