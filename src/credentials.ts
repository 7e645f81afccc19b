/**
 * Credentials fetched per connection: a `password` that is a function (an IAM token, a secret
 * manager lookup) is called once for every new connection, within the pool's connect deadline.
 * Shared by the adapters; driver-free.
 */
import { ConnectError } from './errors';
import { redact, redactError } from './redact';
import { raceAbort } from './time';

/**
 * A password, or a function that returns one (synchronously or as a promise). A function is called
 * for every new connection, so a rotated credential takes effect at the next connect; it runs under
 * the pool's `connectTimeoutMs` like the rest of the connect.
 */
export type PasswordSource = string | (() => string | Promise<string>);

/**
 * Call a password function, bounded by `signal` (the connect deadline). A rejection, a throw, a
 * value that is not a string, or the deadline become a `ConnectError` that names `target` and never
 * contains the secret (nor, on failure, anything the function returned).
 */
export async function fetchPassword(
  source: () => string | Promise<string>,
  signal: AbortSignal,
  driver: string,
  target: string,
  secrets: readonly string[] = [],
): Promise<string> {
  if (signal.aborted) throw abortError(signal, driver, target, secrets);
  let value: unknown;
  try {
    value = await raceAbort(new Promise<unknown>((resolve) => resolve(source())), signal);
  } catch (err) {
    if (signal.aborted) throw abortError(signal, driver, target, secrets);
    const cause = redactError(err, secrets);
    throw new ConnectError(`${driver}: the password function failed for ${redact(target, secrets)}: ${cause.message}`, { cause });
  }
  if (typeof value !== 'string') {
    throw new ConnectError(`${driver}: the password function for ${redact(target, secrets)} returned ${value === null ? 'null' : typeof value}, not a string`);
  }
  return value;
}

function abortError(signal: AbortSignal, driver: string, target: string, secrets: readonly string[]): ConnectError {
  const reason: unknown = signal.reason;
  const text = reason instanceof Error ? reason.message : String(reason);
  return new ConnectError(`${driver}: fetching the password for ${redact(target, secrets)} did not finish (${redact(text, secrets)})`, {
    cause: redactError(reason, secrets),
  });
}

/** The secrets to mask for one password: as given and URL-encoded. */
export function secretsOf(password: string): string[] {
  if (password.length === 0) return [];
  const encoded = encodeURIComponent(password);
  return encoded === password ? [password] : [password, encoded];
}
