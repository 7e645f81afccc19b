/**
 * The defer stack: cleanups registered on a lease run last-in-first-out at release.
 * Every cleanup runs even when an earlier one throws; their errors are collected, never
 * allowed to hide the error of the body that caused the release.
 */
export type Cleanup = () => unknown;

/** Run `cleanups` LIFO (awaiting each), returning the errors thrown, in the order they ran. */
export async function runCleanups(cleanups: Cleanup[] | undefined): Promise<unknown[]> {
  if (cleanups === undefined) return EMPTY;
  let errors: unknown[] | undefined;
  for (let i = cleanups.length - 1; i >= 0; i--) {
    const cleanup = cleanups[i] as Cleanup;
    try {
      await cleanup();
    } catch (err) {
      (errors ??= []).push(err);
    }
  }
  cleanups.length = 0;
  return errors ?? EMPTY;
}

const EMPTY: unknown[] = [];
Object.freeze(EMPTY);
