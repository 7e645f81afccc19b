/**
 * The core (callback) connection under a promise connection: the mysql2 3.x internals this adapter
 * reads (`lib/base/connection.js`), kept in one place.
 */
import type { Connection } from 'mysql2/promise';

/** The core (callback) connection under a promise connection, with the internals we read. */
export interface CoreConnection {
  threadId: number | null;
  readonly config: { multipleStatements?: boolean; trace?: boolean };
  readonly stream: {
    readonly destroyed: boolean;
    destroy(): void;
    once(event: 'close', listener: () => void): unknown;
    ref?(): unknown;
    unref?(): unknown;
  };
  /** Set when the connection hit a fatal error; every later command fails. */
  readonly _fatalError?: unknown;
  readonly _protocolError?: unknown;
  /** Set by `end()`/`destroy()`/`close()` and by a handshake error. */
  readonly _closing?: boolean;
  /** The command being executed and the queue behind it: non-empty means a statement is in flight. */
  readonly _command?: unknown;
  readonly _commands?: { readonly length: number };
  /** The server's initial handshake; `statusFlags` bit 2 is the server's autocommit default. */
  readonly _handshakePacket?: { readonly statusFlags?: number } | null;
  /** Fails the running and queued commands with `err`, emits it, closes. */
  _handleFatalError?(err: Error): void;
  /** The callback API: no promise, and no `trace` stack capture (the promise API's). */
  query(sql: unknown, ...rest: unknown[]): unknown;
  execute(sql: unknown, ...rest: unknown[]): unknown;
  on(event: 'error', listener: (err: unknown) => void): unknown;
  once(event: 'connect', listener: () => void): unknown;
  destroy(): void;
  promise(): Connection;
}
