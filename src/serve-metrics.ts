/**
 * A tiny HTTP server for Prometheus to scrape: `GET /metrics` answers with the text exposition of
 * the registry you pass. It needs only that object (prom-client stays an optional peer: nothing
 * here imports it), and it binds 127.0.0.1 unless `host` says otherwise.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from './errors';

/** What `serveMetrics` needs from a registry: prom-client's `Registry` (or `AggregatorRegistry`) fits. */
export interface MetricsRegistryLike {
  /** The exposition text. */
  metrics(): Promise<string> | string;
  /** The `Content-Type` of that text. */
  readonly contentType: string;
}

/** Options of {@link serveMetrics}. */
export interface ServeMetricsOptions {
  /** The registry to expose, e.g. a prom-client `Registry` given to `createPool({ metrics: { registry } })`. */
  registry: MetricsRegistryLike;
  /** TCP port; `0` picks any free port (read it back from the result). Default 9464. */
  port?: number;
  /**
   * Interface to bind. Default `'127.0.0.1'` (loopback only). Pass `'0.0.0.0'` or `'::'`
   * explicitly to let other machines scrape it.
   */
  host?: string;
}

/** A running metrics server. */
export interface MetricsServer {
  /** The scrape URL, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
  /** The port actually bound (useful with `port: 0`). */
  readonly port: number;
  /** The interface bound. */
  readonly host: string;
  /** Stop listening and drop open connections. Idempotent. */
  close(): Promise<void>;
}

const METRICS_PATH = '/metrics';

/**
 * Serve `registry` at `http://<host>:<port>/metrics` (`GET`/`HEAD`; other paths 404, other
 * methods 405, a failing registry 500).
 *
 * ```ts
 * const registry = new Registry();
 * const pool = createPool(adapter, { metrics: { registry } });
 * const server = await serveMetrics({ registry, port: 9464 });   // 127.0.0.1 only
 * console.log(server.url);
 * await server.close();
 * ```
 *
 * @returns the running server. Rejects with `ConfigError` for a bad registry, port or host, and with
 *   the listen error (e.g. `code: 'EADDRINUSE'`) when the port is taken.
 */
export async function serveMetrics(options: ServeMetricsOptions): Promise<MetricsServer> {
  const { registry, port = 9464, host = '127.0.0.1' } = validate(options);

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== METRICS_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found: scrape ${METRICS_PATH}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    let text: Promise<string>;
    try {
      text = Promise.resolve(registry.metrics());
    } catch (err) {
      text = Promise.reject(err);
    }
    text.then(
      (body) => {
        res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      () => {
        // The registry's error may carry anything (label values, messages): do not echo it.
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('collecting metrics failed\n');
      },
    );
  });
  // Scrapers reconnect every interval anyway; do not let idle keep-alive sockets pile up.
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const reason = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
      reject(Object.assign(new Error(`serveMetrics: cannot listen on ${formatHost(host)}:${port}: ${reason}`, { cause: err }), { code: err.code }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });

  const bound = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${formatHost(host)}:${bound}${METRICS_PATH}`,
    port: bound,
    host,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function validate(options: ServeMetricsOptions): ServeMetricsOptions {
  const problems: { field: string; problem: string }[] = [];
  if (options === null || typeof options !== 'object') {
    throw new ConfigError([{ field: 'options', problem: 'must be an object { registry, port?, host? }' }]);
  }
  const registry = options.registry as Partial<MetricsRegistryLike> | null | undefined;
  if (registry === null || typeof registry !== 'object' || typeof registry.metrics !== 'function' || typeof registry.contentType !== 'string') {
    problems.push({ field: 'registry', problem: 'must be a metrics registry with metrics() and contentType (a prom-client Registry)' });
  }
  const { port, host } = options;
  if (port !== undefined && !(typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65_535)) {
    problems.push({ field: 'port', problem: `must be an integer from 0 to 65535 (got ${typeof port === 'number' ? String(port) : typeof port})` });
  }
  if (host !== undefined && !(typeof host === 'string' && host.length > 0)) {
    problems.push({ field: 'host', problem: 'must be a non-empty string' });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return options;
}

function formatHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
