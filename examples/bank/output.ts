/**
 * Terminal output: one live status line on a TTY (rewritten in place with `\r`), a plain line
 * every second otherwise; event lines (leaks, reclaims, notices) are printed above it.
 */
import type { Logger } from '../../src/index';

export class Output {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  #status: string | undefined;

  constructor(out: NodeJS.WriteStream = process.stdout) {
    this.#out = out;
    this.#tty = out.isTTY === true && process.env['TERM'] !== 'dumb';
  }

  get tty(): boolean {
    return this.#tty;
  }

  /** A line of its own (above the status line on a TTY). */
  line(text = ''): void {
    if (this.#tty && this.#status !== undefined) this.#out.write(`\r\x1b[K${text}\n${this.#status}`);
    else this.#out.write(`${text}\n`);
  }

  /** The status line: rewritten in place on a TTY, printed as a new line otherwise. */
  status(text: string): void {
    if (this.#tty) {
      this.#status = text;
      this.#out.write(`\r\x1b[K${text}`);
    } else {
      this.#out.write(`${text}\n`);
    }
  }

  /** Leave the status line where it is (TTY) and go on below it. */
  endStatus(): void {
    if (this.#tty && this.#status !== undefined) this.#out.write('\n');
    this.#status = undefined;
  }
}

/**
 * The pools' logger for the demo. Lease warnings (leaks, reclaims) are shown from the pool's
 * events instead, so each appears once; other warnings print their first line. While `hold()`
 * is on (start-up), lines are kept back: a failed start-up then prints only its one error line.
 */
export class DemoLogger implements Logger {
  readonly #output: Output;
  #held: string[] | undefined = [];

  constructor(output: Output) {
    this.#output = output;
  }

  /** Print what was held back and stop holding. */
  flush(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const line of held) this.#output.line(line);
  }

  /** Drop what was held back. */
  discard(): void {
    this.#held = [];
  }

  warn(obj: unknown, msg?: string): void {
    this.#log('warning', obj, msg);
  }

  error(obj: unknown, msg?: string): void {
    this.#log('error', obj, msg);
  }

  #log(level: string, obj: unknown, msg: string | undefined): void {
    if (obj !== null && typeof obj === 'object' && 'leaseId' in obj) return; // shown from the pool's events
    const text = typeof obj === 'string' ? obj : (msg ?? '');
    const line = `[leasepool ${level}] ${firstLine(text)}`;
    if (this.#held !== undefined) this.#held.push(line);
    else this.#output.line(line);
  }
}

export function firstLine(text: string): string {
  const i = text.indexOf('\n');
  return i === -1 ? text : text.slice(0, i);
}

/** `1234567` → `1 234 567`. */
export function count(n: number | bigint): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
}
