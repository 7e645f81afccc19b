/**
 * The inspector's options, their validation, and the token check: a token is compared in constant
 * time (SHA-256 of both sides, then `crypto.timingSafeEqual` on the equal-length digests, so
 * neither its content nor its length leaks through timing).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { ConfigError } from '../errors';

/** Options of {@link inspectorHandler} (and of `serveInspector`). */
export interface InspectorOptions {
  /**
   * Required on every request when set: `Authorization: Bearer <token>`, or, for `GET` only, a
   * `?token=` query parameter (the page then sends it as a header and drops it from the address
   * bar). A wrong or missing token gets `401` with an empty body. At least 16 characters.
   * Required for a non-loopback `host` and for `allowReclaim`. Without one, the inspector answers
   * only requests from this machine that name a loopback host (`localhost`, `127.0.0.1`, `[::1]`):
   * 403 otherwise, so that no other site's page can read it through DNS rebinding.
   */
  token?: string | undefined;
  /**
   * Enable `POST …/debug/leases/<pool>/<id>/reclaim` (and the page's reclaim button): the lease is
   * taken back as the leak path does (revoked, statement cancelled, rolled back, connection
   * destroyed; counted as `leak_reclaimed`). Needs `token`. Default false.
   */
  allowReclaim?: boolean | undefined;
  /** How many leak reports and reclaims are kept per pool while attached. Default 50. */
  recentReports?: number | undefined;
  /** How often the page polls `leases.json`. Default 1000 ms. */
  pollIntervalMs?: number | undefined;
}

/** Shortest token accepted. */
export const MIN_TOKEN_LENGTH = 16;

type Problems = { field: string; problem: string }[];

/** Check the handler's options; returns the list of problems (empty when fine). */
export function inspectorProblems(options: InspectorOptions): Problems {
  const problems: Problems = [];
  const { token, allowReclaim, recentReports, pollIntervalMs } = options;
  if (token !== undefined && !(typeof token === 'string' && token.length >= MIN_TOKEN_LENGTH)) {
    problems.push({ field: 'token', problem: `must be a string of at least ${MIN_TOKEN_LENGTH} characters (e.g. crypto.randomBytes(24).toString('base64url'))` });
  }
  if (allowReclaim !== undefined && typeof allowReclaim !== 'boolean') problems.push({ field: 'allowReclaim', problem: 'must be a boolean' });
  if (allowReclaim === true && token === undefined) problems.push({ field: 'allowReclaim', problem: 'needs a token: reclaiming a lease is only allowed to requests that carry it' });
  if (recentReports !== undefined && !(typeof recentReports === 'number' && Number.isInteger(recentReports) && recentReports >= 0 && recentReports <= 10_000)) {
    problems.push({ field: 'recentReports', problem: 'must be an integer from 0 to 10000' });
  }
  if (pollIntervalMs !== undefined && !(typeof pollIntervalMs === 'number' && Number.isFinite(pollIntervalMs) && pollIntervalMs >= 100)) {
    problems.push({ field: 'pollIntervalMs', problem: 'must be a number of milliseconds, at least 100' });
  }
  return problems;
}

/** Throw one `ConfigError` naming every problem. */
export function throwIfProblems(problems: Problems): void {
  if (problems.length > 0) throw new ConfigError(problems);
}

/** True for an address only this machine can reach: 127.0.0.0/8, ::1, `localhost`. */
export function isLoopback(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h === 'localhost') return true;
  const kind = isIP(h);
  if (kind === 4) return h.startsWith('127.');
  if (kind === 6) {
    const lower = h.toLowerCase();
    return lower === '::1' || lower === '0:0:0:0:0:0:0:1' || (lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4 && lower.slice(7).startsWith('127.'));
  }
  return false;
}

/** The token check of one request: true when `presented` is the token. Constant time in both. */
export function tokenMatches(expected: Buffer, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  return timingSafeEqual(expected, digest(presented));
}

/** The digest a token is compared as. */
export function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
