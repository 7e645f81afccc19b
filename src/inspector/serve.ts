/**
 * `serveInspector(pools, options)`: the lease inspector on an HTTP server of its own, as
 * `serveMetrics` serves `/metrics`. Binds 127.0.0.1 unless `host` says otherwise; a host other
 * machines can reach requires a `token`.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../errors';
import { poolsOf, type InspectedPool } from './attach';
import { inspectorHandler } from './handler';
import { inspectorProblems, isLoopback, type InspectorOptions } from './options';

/** Options of {@link serveInspector}. */
export interface ServeInspectorOptions extends InspectorOptions {
  /** TCP port; `0` picks a free one (read it back from the result). Default 9465. */
  port?: number | undefined;
  /**
   * Interface to bind. Default `'127.0.0.1'` (loopback only). Any other (`'0.0.0.0'`, `'::'`, a
   * LAN address) requires `token`: without one, `serveInspector` rejects with `ConfigError`.
   */
  host?: string | undefined;
}

/** A running inspector server. */
export interface InspectorServer {
  /** The page's URL, e.g. `http://127.0.0.1:9465/debug/leases` (without the token). */
  readonly url: string;
  /** The JSON endpoint's URL. */
  readonly jsonUrl: string;
  /** The port actually bound. */
  readonly port: number;
  /** The interface bound. */
  readonly host: string;
  /** Stop listening, drop open connections and detach from the pools. Idempotent. */
  close(): Promise<void>;
}

/**
 * Serve the lease inspector for `pools` at `http://<host>:<port>/debug/leases` (page) and
 * `/debug/leases.json` (data).
 *
 * ```ts
 * const inspector = await serveInspector([pool], { port: 9465 });   // 127.0.0.1 only
 * console.log(inspector.url);
 * ```
 *
 * @returns the running server. Rejects with `ConfigError` for bad options (a non-loopback host
 *   without a token among them), and with the listen error (`code: 'EADDRINUSE'`, …).
 */
export async function serveInspector(pools: InspectedPool | readonly InspectedPool[], options: ServeInspectorOptions = {}): Promise<InspectorServer> {
  if (options === null || typeof options !== 'object') throw new ConfigError([{ field: 'options', problem: 'must be an object { port?, host?, token?, allowReclaim? }' }]);
  const { port = 9465, host = '127.0.0.1' } = options;
  poolsOf(pools);
  const problems = inspectorProblems(options);
  if (!(typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65_535)) {
    problems.push({ field: 'port', problem: `must be an integer from 0 to 65535 (got ${typeof port === 'number' ? String(port) : typeof port})` });
  }
  if (!(typeof host === 'string' && host.length > 0)) problems.push({ field: 'host', problem: 'must be a non-empty string' });
  else if (!isLoopback(host) && options.token === undefined) {
    problems.push({ field: 'token', problem: `is required when host is not a loopback address (got host ${host}): the page shows every lease's statement and stack` });
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const handler = inspectorHandler(pools, options);
  const server = http.createServer(handler);
  server.keepAliveTimeout = 5_000;
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const reason = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
        reject(Object.assign(new Error(`serveInspector: cannot listen on ${formatHost(host)}:${port}: ${reason}`, { cause: err }), { code: err.code }));
      };
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
  } catch (err) {
    handler.close();
    throw err;
  }
  const bound = (server.address() as AddressInfo).port;
  const base = `http://${formatHost(host)}:${bound}/debug/leases`;
  let closing: Promise<void> | undefined;
  return {
    url: base,
    jsonUrl: `${base}.json`,
    port: bound,
    host,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        handler.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function formatHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
