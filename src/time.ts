/** Sleep without keeping the process alive. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Monotonic milliseconds. */
export const now = (): number => performance.now();
