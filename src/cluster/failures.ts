/**
 * What a failed call says about its host: gone (connect refused, connection lost, the outcome of a
 * COMMIT unknown), or not what the cluster thought (a write refused by a read-only server).
 */
import type { Adapter } from '../adapter';
import { ConnectError, TxOutcomeUnknownError } from '../errors';

/** True when `err` means the host (or the connection to it) is gone. */
export function hostGone(adapter: Adapter<object>, err: unknown): boolean {
  if (err instanceof ConnectError || err instanceof TxOutcomeUnknownError) return true;
  try {
    if (adapter.isFatal(err)) return true;
    const cause = (err as { cause?: unknown } | null)?.cause;
    return cause !== undefined && adapter.isFatal(cause);
  } catch {
    return false;
  }
}

/** True when a server refused a write because it is read-only (PostgreSQL 25006; MySQL 1290 / 1836). */
export function refusedAsReadOnly(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  return e?.code === '25006' || e?.errno === 1290 || e?.errno === 1836;
}
