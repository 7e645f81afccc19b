/**
 * The smallest honest pool: an array of idle resources and a FIFO queue of waiters. No timeouts,
 * no validation, no creation: the floor a real pool's acquire/release is compared with.
 */
export class MinimalPool<T> {
  readonly #idle: T[];
  #waiters: ((resource: T) => void)[] = [];
  #head = 0;

  constructor(resources: readonly T[]) {
    this.#idle = [...resources];
  }

  acquire(): Promise<T> {
    const resource = this.#idle.pop();
    if (resource !== undefined) return Promise.resolve(resource);
    return new Promise<T>((resolve) => this.#waiters.push(resolve));
  }

  release(resource: T): void {
    if (this.#head < this.#waiters.length) {
      const waiter = this.#waiters[this.#head] as (resource: T) => void;
      this.#head++;
      if (this.#head > 1024 && this.#head * 2 > this.#waiters.length) {
        this.#waiters = this.#waiters.slice(this.#head);
        this.#head = 0;
      }
      waiter(resource);
    } else {
      this.#idle.push(resource);
    }
  }
}
