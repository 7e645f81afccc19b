/**
 * Run the bank demo (`examples/bank.ts`) as a child process, the way `npm start` does, and scrape
 * its `/metrics` while it runs.
 */
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');

export interface DemoRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Milliseconds from spawn to exit. */
  readonly elapsedMs: number;
  /** `/metrics` as answered while the workload was running (when asked for). */
  readonly scrape: { status: number; body: string } | undefined;
}

export interface DemoOptions {
  /** Extra environment (merged over this process's, with DATABASE_URL removed unless given). */
  env?: Record<string, string>;
  /** Kill the child (SIGKILL) after this long. */
  killAfterMs: number;
  /** Fetch the printed metrics URL once the workload is running. */
  scrapeWhileRunning?: boolean;
  /** Called with the child and its stdout so far on every stdout chunk (e.g. to send a signal). */
  onStdout?: (stdout: string, child: { kill(signal: NodeJS.Signals): boolean }) => void;
}

/** Spawn `node --import tsx examples/bank.ts …args` in the repository root. */
export function runDemo(args: readonly string[], options: DemoOptions): Promise<DemoRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  if (options.env?.['DATABASE_URL'] === undefined) delete env['DATABASE_URL'];
  delete env['NODE_OPTIONS'];
  const startedAt = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/bank.ts', ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let scrape: Promise<{ status: number; body: string }> | undefined;
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    stdout += chunk;
    if (options.scrapeWhileRunning === true && scrape === undefined && stdout.includes('running (Ctrl-C')) {
      const url = /^metrics: (http:\/\/\S+)$/m.exec(stdout)?.[1];
      if (url !== undefined) scrape = get(url);
    }
    options.onStdout?.(stdout, child);
  });
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), options.killAfterMs);
  return new Promise<DemoRun>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      const elapsedMs = Date.now() - startedAt;
      const done = (result: { status: number; body: string } | undefined): void =>
        resolve({ code, signal, stdout, stderr, elapsedMs, scrape: result });
      if (scrape === undefined) done(undefined);
      else scrape.then(done, (err: unknown) => done({ status: -1, body: String(err) }));
    });
  });
}

/** GET on a socket of its own (no keep-alive agent left behind). */
export function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error(`GET ${url} timed out`)));
  });
}

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A number printed in the summary table, e.g. `value(out, 'rollback')` for "  rollback      52". */
export function summaryValue(stdout: string, label: string): number {
  const escaped = label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const match = new RegExp(`^  ${escaped} {2,}([\\d ]+)`, 'm').exec(stdout);
  if (match === null) throw new Error(`summary row "${label}" not found in:\n${stdout}`);
  return Number((match[1] as string).replace(/ /g, ''));
}

/** Assertions every successful run must pass, whatever the database. */
export function expectHealthyRun(run: DemoRun): void {
  const context = `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
  if (run.code !== 0) throw new Error(`demo exited with ${run.code ?? run.signal}\n${context}`);
  expect(run.stderr).toBe('');
  expect(run.stdout).toMatch(/^total balance unchanged: yes$/m);
  expect(run.stdout).not.toMatch(/total balance unchanged: no/);

  // The metrics endpoint answered with leasepool series while the workload ran.
  expect(run.scrape?.status).toBe(200);
  expect(run.scrape?.body).toMatch(/^leasepool_transactions_total\{pool="bank",outcome="commit"\} \d+$/m);
  expect(run.scrape?.body).toMatch(/^leasepool_connections\{pool="bank",state="active"\} \d+$/m);
  expect(run.scrape?.body).toContain('process_cpu_user_seconds_total'); // collectDefaultMetrics

  // Work was done, and the injected throw rolled back.
  expect(summaryValue(run.stdout, 'committed')).toBeGreaterThan(0);
  expect(summaryValue(run.stdout, 'rollback')).toBeGreaterThan(0);
  expect(run.stdout).toMatch(/^ {2}throw after the debit +(\d+) injected \(rate [\d.]+%\) → \1 rolled back$/m);
  expect(run.stdout).toMatch(/^\[fault\] threw after the debit: transaction rolled back/m);

  // A leaked lease: reported by the leak detector with its acquire stack, then reclaimed.
  expect(run.stdout).toMatch(/^\[leak\] lease #\d+ held \d+ ms inside a transaction: reported by the leak detector/m);
  expect(run.stdout).toMatch(/^leak reports \([1-9]\d*\):\n[\s\S]*?^ {2}lease #\d+ held \d+ ms, inside a transaction; acquired at:\n {4}at .*#leakLease \(.*examples\/bank\/workload\.ts:\d+:\d+\)$/m);
  expect(run.stdout).toMatch(/^\[reclaim\] leaked lease #\d+ reclaimed \((leak_reclaimed|gc_reclaimed)\) after \d+ ms/m);
  expect(summaryValue(run.stdout, 'leaks detected')).toBeGreaterThan(0);

  // A transaction past its deadline was revoked and rolled back, and counted as a deadline, not a leak.
  expect(run.stdout).toMatch(/^ {2}slow transaction +(\d+) injected .*→ \1 cancelled and rolled back at their \d+ ms deadline$/m);
  expect(run.stdout).toMatch(/^\[deadline\] lease #\d+ revoked at its \d+ ms deadline \(\d+ ms\): .*counted as kind deadline, not as a leak$/m);
  expect(summaryValue(run.stdout, 'recoveries deadline')).toBeGreaterThan(0);
  expect(summaryValue(run.stdout, 'unexpected errors')).toBe(0);
  // No stack trace outside the leak reports.
  expect(run.stdout.replace(/^leak reports[\s\S]*?\n\n/m, '')).not.toMatch(/^\s+at /m);
}
