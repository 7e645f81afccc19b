/**
 * A real Prometheus for the dashboard tests: finds `prometheus`/`promtool` on PATH (installed by
 * `scripts/ensure-tools.sh`), runs Prometheus as a child process with a throw-away config and
 * data directory, and talks to its HTTP API. Nothing here needs a service manager.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** Absolute path of `name` on PATH, or undefined. */
export function findBinary(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Path of `prometheus` or `promtool` (jest's globalSetup runs `scripts/ensure-tools.sh`, which
 * installs them); throws saying how to install them when missing.
 */
export function requireBinary(name: 'prometheus' | 'promtool'): string {
  const found = findBinary(name);
  if (found === undefined) {
    throw new Error(`\`${name}\` is not on PATH: run scripts/ensure-tools.sh (installs the Debian 'prometheus' package)`);
  }
  return found;
}

export interface PromtoolResult {
  readonly status: number | null;
  readonly output: string;
}

/** Run `promtool <args>` from the repository root; output is stdout + stderr. */
export function promtool(args: readonly string[]): PromtoolResult {
  const r = spawnSync(requireBinary('promtool'), [...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr !== null && typeof addr === 'object') resolve(addr.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/** GET a URL (no keep-alive: nothing stays open after the call). */
export function httpGet(url: string, timeoutMs = 5_000): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** GET a URL and parse its JSON body. */
export async function getJson<T>(url: string, timeoutMs = 5_000): Promise<{ status: number; body: T }> {
  const { status, text } = await httpGet(url, timeoutMs);
  try {
    return { status, body: JSON.parse(text) as T };
  } catch {
    throw new Error(`GET ${url}: HTTP ${status}, not JSON: ${text.slice(0, 300)}`);
  }
}

/** One series of an instant vector result. */
export interface PromSample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

/** Answer of `/api/v1/query`. */
export type QueryResult =
  | { readonly status: 'success'; readonly data: { readonly resultType: string; readonly result: PromSample[] } }
  | { readonly status: 'error'; readonly errorType: string; readonly error: string };

/** One rule as `/api/v1/rules` reports it. */
export interface PromRule {
  readonly name: string;
  readonly query: string;
  readonly type: 'alerting' | 'recording';
  readonly health: 'ok' | 'err' | 'unknown';
  readonly lastError?: string;
  readonly state?: 'inactive' | 'pending' | 'firing';
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
  readonly alerts?: ReadonlyArray<{ labels: Record<string, string>; state: string; value: string }>;
}

export interface PromTarget {
  readonly scrapeUrl: string;
  readonly health: 'up' | 'down' | 'unknown';
  readonly lastError: string;
  readonly labels: Record<string, string>;
}

export interface StartOptions {
  /** `host:port` targets to scrape (`/metrics`), job `leasepool`. */
  readonly targets: readonly string[];
  /** Rule files (absolute paths) loaded with `rule_files`. */
  readonly ruleFiles?: readonly string[];
  /** Scrape and rule evaluation interval, seconds. Default 1. */
  readonly intervalSeconds?: number;
  /** How long to wait for `/-/ready`. Default 30 000. */
  readonly readyTimeoutMs?: number;
}

/** A running Prometheus child process. */
export interface PrometheusServer {
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  readonly url: string;
  /** Evaluate an instant query now. */
  query(expr: string): Promise<QueryResult>;
  /** All loaded rules (flattened over groups). */
  rules(): Promise<PromRule[]>;
  /** Active scrape targets. */
  targets(): Promise<PromTarget[]>;
  /** Prometheus's own log so far (stderr), for failure messages. */
  log(): string;
  /** Stop Prometheus (SIGTERM, then SIGKILL) and delete its data directory. Idempotent. */
  stop(): Promise<void>;
}

/** Start Prometheus on a free 127.0.0.1 port with a temporary config and TSDB directory. */
export async function startPrometheus(opts: StartOptions): Promise<PrometheusServer> {
  const bin = requireBinary('prometheus');
  const interval = opts.intervalSeconds ?? 1;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'leasepool-prom-'));
  const configFile = path.join(dir, 'prometheus.yml');
  // YAML is a superset of JSON: write the config as JSON, no YAML library needed.
  const config = {
    global: { scrape_interval: `${interval}s`, scrape_timeout: `${interval}s`, evaluation_interval: `${interval}s` },
    rule_files: [...(opts.ruleFiles ?? [])],
    scrape_configs: [{ job_name: 'leasepool', static_configs: [{ targets: [...opts.targets] }] }],
  };
  writeFileSync(configFile, JSON.stringify(config, null, 2));

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let logText = '';
  const child: ChildProcess = spawn(
    bin,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const append = (c: Buffer): void => {
    logText += c.toString('utf8');
    if (logText.length > 200_000) logText = logText.slice(-100_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let exitedEarly = false;
  void exited.then(() => {
    exitedEarly = true;
  });
  // Last resort if the test process dies before stop(): never leave a Prometheus behind.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const server: PrometheusServer = {
    url,
    async query(expr) {
      const { body } = await getJson<QueryResult>(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      return body;
    },
    async rules() {
      const { body } = await getJson<{ status: string; data: { groups: Array<{ rules: PromRule[] }> } }>(`${url}/api/v1/rules`);
      return body.data.groups.flatMap((g) => g.rules);
    },
    async targets() {
      const { body } = await getJson<{ data: { activeTargets: PromTarget[] } }>(`${url}/api/v1/targets`);
      return body.data.activeTargets;
    },
    log: () => logText,
    stop,
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (exitedEarly) {
      await stop();
      throw new Error(`prometheus exited during startup (code ${String(child.exitCode)}):\n${logText}`);
    }
    const ready = await httpGet(`${url}/-/ready`, 1_000).then(
      (r) => r.status === 200,
      () => false, // not listening yet: ask again
    );
    if (ready) return server;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready after ${opts.readyTimeoutMs ?? 30_000} ms:\n${logText}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
