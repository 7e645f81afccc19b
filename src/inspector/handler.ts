/**
 * `inspectorHandler(pools, options)`: the inspector as a `node:http` request handler, to mount in
 * an existing server, Express (`app.use(handler)`) or Fastify (`reply.hijack()`, then
 * `handler(request.raw, reply.raw)`). Routes, by the end of the path (so a mount prefix is fine):
 *
 *   GET  …/debug/leases                       the live page (HTML)
 *   GET  …/debug/leases.json                  the snapshot (schema.ts)
 *   POST …/debug/leases/<pool>/<id>/reclaim   take lease <id> back (only with `allowReclaim`)
 *
 * Anything else: `next()` when the framework passed one, else 404. Without a token, only requests
 * from this machine that name a loopback host are answered (403 otherwise).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { attachInspector, DEFAULT_RECENT_REPORTS, poolsOf, type InspectedPool } from './attach';
import { digest, inspectorProblems, isLoopback, throwIfProblems, tokenMatches, type InspectorOptions } from './options';
import { inspectorPage } from './page';
import { inspectInternals, reclaimFromInspector } from './snapshot';

/** A `node:http` handler serving the inspector; `close()` detaches it from its pools. */
export interface InspectorHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  /** Detach from the pools: statement tracking and the report buffer stop (when no other inspector is attached). Idempotent. */
  close(): void;
}

const PAGE = /\/debug\/leases$/;
const JSON_PATH = /\/debug\/leases\.json$/;
const RECLAIM = /\/debug\/leases\/([^/]+)\/(\d{1,15})\/reclaim$/;

const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
} as const;

/**
 * The inspector's request handler over `pools`, attached to them from now until `close()`.
 *
 * ```ts
 * const inspector = inspectorHandler([pool], { token: process.env.INSPECTOR_TOKEN });
 * app.use(inspector);                      // Express: GET /debug/leases
 * ```
 *
 * @throws ConfigError for bad options (a short token, `allowReclaim` without a token, …).
 */
export function inspectorHandler(pools: InspectedPool | readonly InspectedPool[], options: InspectorOptions = {}): InspectorHandler {
  throwIfProblems(inspectorProblems(options ?? {}));
  const list = poolsOf(pools);
  const expected = options.token === undefined ? undefined : digest(options.token);
  const allowReclaim = options.allowReclaim === true;
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const detach = list.map((pool) => attachInspector(pool, options.recentReports ?? DEFAULT_RECENT_REPORTS));

  const handler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void => {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const route = PAGE.test(path) ? 'page' : JSON_PATH.test(path) ? 'json' : RECLAIM.test(path) ? 'reclaim' : undefined;
    if (route === undefined) {
      if (next !== undefined) return next();
      res.writeHead(404, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8' }).end('not found: the lease inspector is at /debug/leases\n');
      return;
    }
    if (expected !== undefined) {
      if (!tokenMatches(expected, presentedToken(req, q === -1 ? '' : url.slice(q + 1)))) {
        res.writeHead(401, { ...SECURITY_HEADERS, 'www-authenticate': 'Bearer' }).end();
        return;
      }
    } else if (!fromLoopback(req)) {
      // Without a token only this machine may look, by a loopback name: a page of another site
      // whose name was made to resolve to 127.0.0.1 (DNS rebinding) sends its own name as Host.
      res.writeHead(403, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8' }).end('the lease inspector without a token answers loopback requests only (set a token)\n');
      return;
    }
    const method = req.method ?? 'GET';
    if (route === 'reclaim') {
      if (method !== 'POST') return methodNotAllowed(res, 'POST');
      if (!allowReclaim) {
        res.writeHead(403, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8' }).end('reclaim is disabled (allowReclaim: false)\n');
        return;
      }
      const [, rawPool, rawId] = RECLAIM.exec(path) as RegExpExecArray;
      let poolName: string;
      try {
        poolName = decodeURIComponent(rawPool as string);
      } catch {
        return sendJson(res, 400, { reclaimed: false, error: 'bad pool name' });
      }
      const id = Number(rawId);
      reclaimFromInspector(list, poolName, id).then(
        (outcome) => (outcome === true ? sendJson(res, 200, { reclaimed: true, id }) : sendJson(res, 404, { reclaimed: false, error: outcome })),
        () => sendJson(res, 500, { reclaimed: false, error: 'reclaim failed' }),
      );
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed(res, 'GET, HEAD');
    if (route === 'json') {
      const body = JSON.stringify(inspectInternals(list, allowReclaim));
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8' }).end(method === 'HEAD' ? undefined : body);
      return;
    }
    const nonce = randomBytes(16).toString('base64');
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    });
    res.end(method === 'HEAD' ? undefined : inspectorPage(nonce, pollIntervalMs));
  };
  let closed = false;
  return Object.assign(handler, {
    close(): void {
      if (closed) return;
      closed = true;
      for (const off of detach) off();
    },
  });
}

/** A request from this machine (loopback peer) that names a loopback host (`localhost`, `127.0.0.1:port`, `[::1]:port`). */
function fromLoopback(req: IncomingMessage): boolean {
  const peer = req.socket?.remoteAddress;
  if (peer === undefined || !isLoopback(peer)) return false;
  const host = req.headers.host;
  if (host === undefined) return true; // HTTP/1.0 without Host: not a browser's request
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':', 1)[0] ?? '';
  return isLoopback(name);
}

/** `Authorization: Bearer <token>`, or for a GET the `token` query parameter. */
function presentedToken(req: IncomingMessage, query: string): string | undefined {
  const header = req.headers.authorization;
  if (typeof header === 'string') {
    const m = /^Bearer\s+(.+)$/i.exec(header.trim());
    return m === null ? undefined : m[1];
  }
  if ((req.method === 'GET' || req.method === 'HEAD') && query.length > 0) return new URLSearchParams(query).get('token') ?? undefined;
  return undefined;
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.writeHead(405, { ...SECURITY_HEADERS, allow, 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
}
