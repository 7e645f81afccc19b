/**
 * Passwords never appear in messages, logs, metric labels or leak reports.
 * Adapters pass the secrets they know; URLs are masked whatever their scheme.
 */

const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*):([^@/?#\s]*)@/gi;
// MySQL's "(using password: YES)" says whether one was sent, not what it was: left as it is.
const PASSWORD_PARAM = /((?:password|passwd|pwd)\s*[=:]\s*)(?!(?:YES|NO)\))("[^"]*"|'[^']*'|[^\s&;,]+)/gi;

/** Mask `user:secret@` in URLs, `password=…` pairs, and every literal secret given. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(URL_CREDENTIALS, '$1:***@').replace(PASSWORD_PARAM, '$1***');
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join('***');
  }
  return out;
}

/**
 * Copy of a driver error safe to keep as `cause`: same name, code and fields that carry no
 * secret, message and stack redacted. The original is not kept (it may hold the config).
 */
export function redactError(err: unknown, secrets: readonly string[] = []): Error {
  // Duck-typed: errors from another realm (Node's own, seen from a vm context) fail instanceof.
  if (!isErrorLike(err)) return new Error(redact(String(err), secrets));
  const copy = new Error(redact(err.message, secrets));
  copy.name = err.name;
  if (err.stack !== undefined) copy.stack = redact(err.stack, secrets);
  const src = err as unknown as Record<string, unknown>;
  const dst = copy as unknown as Record<string, unknown>;
  for (const key of ['code', 'errno', 'sqlState', 'severity', 'syscall', 'address', 'port', 'detail', 'routine']) {
    const value = src[key];
    if (typeof value === 'string') dst[key] = redact(value, secrets);
    else if (typeof value === 'number') dst[key] = value;
  }
  return copy;
}

function isErrorLike(err: unknown): err is Error {
  return err instanceof Error || (typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string');
}
