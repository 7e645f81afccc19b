/**
 * The ambient frame of a cluster call (`AsyncLocalStorage`, one per cluster): the read-your-writes
 * session it runs in, and the host a running call is on, so that a nested call joins it (the host
 * pool then makes it a savepoint or joins the lease).
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** A read-your-writes session (`cluster.session(fn)`): when the last write in it committed, and where. */
export interface Session {
  writtenAt: number | undefined;
  /** PostgreSQL: the primary's WAL position after the last write (with `waitForReplayMs`). */
  position: string | undefined;
}

export interface Frame<H> {
  readonly session: Session | undefined;
  readonly host: H | undefined;
}

export function createFrames<H>(): AsyncLocalStorage<Frame<H>> {
  return new AsyncLocalStorage<Frame<H>>();
}
