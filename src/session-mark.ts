/**
 * The mark an adapter sets on a raw connection whose session a statement of a lease changed in a
 * way the next borrower must not inherit (see `Adapter.sessionChanged`). A property on the
 * connection, not a map lookup: it is read at every release.
 */
const SESSION_CHANGED = Symbol('leasepool.sessionChanged');

interface Marked {
  [SESSION_CHANGED]?: boolean;
}

/** Set (or clear, after a reset or on a new connection) the mark of `conn`. */
export function markSessionChanged(conn: object, changed: boolean): void {
  (conn as Marked)[SESSION_CHANGED] = changed;
}

/** True when `conn` carries the mark. */
export function sessionMarked(conn: object): boolean {
  return (conn as Marked)[SESSION_CHANGED] === true;
}
