/**
 * Opening and closing connections within a deadline: the `'error'` listener from birth, a connect
 * that completes late destroyed, a close that never hangs.
 */
import { createConnection as createCoreConnection } from 'mysql2';
import type { Connection } from 'mysql2/promise';
import type { ConnectionEvents } from '../../src/adapter';
import { ConnectError } from '../../src/errors';
import { redact, redactError } from '../../src/redact';
import type { CoreConnection } from './core';
import { SERVER_STATUS_AUTOCOMMIT, type ConnState, states, stateOfCore, markSession, driverBusy, isDead } from './state';
import type { Resolved } from './config';
import { errorFields, localError, describeFailure } from './errors';

/**
 * Destroy the socket now. Idempotent; never throws. mysql2's own `destroy()` leaves the statements
 * in flight unsettled forever (it marks the connection closing, which mutes the close handler), so
 * they are failed first with a fatal `PROTOCOL_CONNECTION_LOST` error.
 */
export function hardDestroy(core: CoreConnection | undefined): void {
  if (core === undefined) return;
  const state = stateOfCore.get(core);
  if (state !== undefined) {
    state.broken = true;
    state.reported = true; // our own decision: nothing to report
  }
  if (state !== undefined && driverBusy(core) && !core._fatalError && typeof core._handleFatalError === 'function') {
    const err = Object.assign(new Error('Connection lost: closed by leasepool while a statement was running'), {
      code: 'PROTOCOL_CONNECTION_LOST',
      fatal: true,
    });
    try {
      core._handleFatalError(err);
    } catch {
      // a throwing user callback: the socket is destroyed below anyway
    }
  }
  try {
    if (!core.stream.destroyed) core.destroy();
  } catch {
    // already closed
  }
  try {
    core.stream.destroy();
  } catch {
    // already destroyed
  }
}

/** Resolve after `ms` (timer cleared by the returned `cancel`), to race a promise against. */
export function delay(ms: number): { promise: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

export const NO_EVENTS: ConnectionEvents = { onError: () => undefined };

/**
 * Open one promise connection. The core connection gets its `'error'` listener before anything
 * can fail; errors after the handshake go to `events.onError` (once per connection).
 */
export function openConnection(resolved: Resolved, signal: AbortSignal, events: ConnectionEvents): Promise<Connection> {
  const { target, secrets } = resolved;
  return new Promise<Connection>((resolve, reject) => {
    let settled = false;
    let core: CoreConnection | undefined;
    let state: ConnState | undefined;

    const fail = (message: string, cause: unknown): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      hardDestroy(core);
      reject(new ConnectError(message, { cause: cause === undefined ? undefined : redactError(localError(cause), secrets) }));
    };

    const onAbort = (): void => {
      const reason: unknown = signal.reason;
      const text = errorFields(reason).message; // duck-typed: the reason may come from another realm
      const why = typeof text === 'string' && text.length > 0 ? `: ${redact(text, secrets)}` : '';
      fail(`mysql2: connecting to ${target} was aborted${why}`, reason);
    };

    const onError = (err: unknown): void => {
      if (!settled) {
        fail(`mysql2: could not connect to ${target}${describeFailure(err, secrets)}`, err);
        return;
      }
      if (state === undefined) return; // failed connect: the rejection already told the story
      state.broken = true;
      if (state.reported) return;
      state.reported = true;
      try {
        events.onError(err);
      } catch {
        // A throwing listener must not turn a socket event into an uncaught exception.
      }
    };

    if (signal.aborted) {
      // Asynchronous like every other failure (generic-pool spins on synchronous rejections).
      setImmediate(onAbort);
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });

    try {
      core = createCoreConnection(resolved.driverOptions()) as unknown as CoreConnection;
    } catch (err) {
      // Bad options (e.g. a port out of range) throw synchronously inside mysql2.
      setImmediate(() => fail(`mysql2: could not connect to ${target}${describeFailure(err, secrets)}`, err));
      return;
    }
    const born = core;
    born.on('error', onError);
    born.once('connect', () => {
      if (settled || signal.aborted) {
        // Completed after the deadline: never handed out.
        if (!settled) onAbort();
        hardDestroy(born);
        return;
      }
      settled = true;
      signal.removeEventListener('abort', onAbort);
      const conn = born.promise();
      const flags = born._handshakePacket?.statusFlags;
      const defaultAutocommit = typeof flags === 'number' ? (flags & SERVER_STATUS_AUTOCOMMIT) !== 0 : undefined;
      state = {
        core: born,
        status: 'idle',
        autocommit: defaultAutocommit,
        defaultAutocommit,
        opaque: false,
        sessionChanged: false,
        pendingTxCharacteristics: false,
        promise: conn,
        broken: false,
        reported: false,
      };
      states.set(conn, state);
      markSession(state);
      stateOfCore.set(born, state);
      // The promise connection re-emits the core's errors once someone listens on it (a user's
      // listener on `lease.conn`); listening on both keeps either path from ever being unhandled.
      conn.on('error', onError);
      resolve(conn);
    });
  });
}

export async function closeConnection(conn: Connection, closeTimeoutMs: number): Promise<void> {
  const state = states.get(conn);
  const core = state?.core ?? (conn as unknown as { connection?: CoreConnection }).connection;
  if (state !== undefined) state.broken = true;
  if (core === undefined) {
    try {
      conn.destroy();
    } catch {
      // nothing more to do
    }
    return;
  }
  if (isDead(core)) {
    hardDestroy(core);
    return;
  }
  const timer = delay(closeTimeoutMs);
  try {
    const socketClosed = new Promise<void>((resolve) => {
      if (core.stream.destroyed) resolve();
      else core.stream.once('close', resolve);
    });
    // `end()` queues COM_QUIT behind any running statement and resolves when it is written
    // (it never rejects); the server then closes the socket.
    const graceful = conn.end().then(() => socketClosed);
    await Promise.race([graceful, timer.promise]);
  } catch {
    // fall through to destroy
  } finally {
    timer.cancel();
    hardDestroy(core);
  }
}
