/**
 * Helpers for the "every lease ends" suites on real databases (leaks, deadlines, GC, shutdown):
 * a capturing logger, a metric reader, bounded polling, call-site parsing, a blackhole server.
 */
import * as net from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../../src';

export interface LogEntry {
  readonly level: 'warn' | 'error' | 'info' | 'debug';
  readonly obj: unknown;
  readonly msg: string;
}

/** A logger that records every call, so tests assert on what users would see and nothing reaches the console. */
export function captureLogger(): { logger: Logger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at =
    (level: LogEntry['level']) =>
    (obj: unknown, msg?: string): void => {
      entries.push({ level, obj, msg: msg ?? (typeof obj === 'string' ? obj : '') });
    };
  return { entries, logger: { warn: at('warn'), error: at('error'), info: at('info'), debug: at('debug') } };
}

/** Sum of the series of counter/gauge `name` matching `labels`. */
export async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (m === undefined) throw new Error(`metric ${name} is not registered`);
  const data = await m.get();
  return data.values
    .filter((v) => ((v as { metricName?: string }).metricName ?? name) === name && Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val))
    .reduce((sum, v) => sum + v.value, 0);
}

/** Poll until `predicate` holds (state produced by a timer, the server, or another process); bounded. */
export async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 5_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Let real time pass (only to show that something does NOT happen during it, never to wait out a race). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The error a promise rejects with; throws if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** `file:line` of a stack frame line such as `    at fn (/path/file.ts:12:34)` or `    at /path/file.ts:12:34`. */
export function frameSite(frame: string | undefined): string | undefined {
  if (frame === undefined) return undefined;
  const match = /\(?((?:[A-Za-z]:)?[^\s()]+):(\d+):\d+\)?\s*$/.exec(frame.trim());
  return match === null ? undefined : `${match[1]}:${match[2]}`;
}

/** `file:line` of the frame that created `err` (use `new Error()` on the line under test). */
export function siteOf(err: Error): string {
  const frames = (err.stack ?? '').split('\n').filter((l) => l.trimStart().startsWith('at '));
  const site = frameSite(frames[0]);
  if (site === undefined) throw new Error(`no frame in ${err.stack}`);
  return site;
}

/** `file:line` of the first frame of a leak report's stack (frames only, no header). */
export function topSite(stack: string | undefined): string | undefined {
  return frameSite(stack?.split('\n').find((l) => l.trimStart().startsWith('at ')));
}

/** A TCP server that accepts connections and never answers: a connect to it hangs until aborted. */
export async function blackhole(): Promise<{ port: number; sockets: net.Socket[]; closed: Set<net.Socket>; close(): Promise<void> }> {
  const sockets: net.Socket[] = [];
  /** Sockets the client has ended or reset (the blackhole itself never closes one before `close()`). */
  const closed = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => closed.add(socket));
    socket.on('end', () => closed.add(socket));
    socket.on('close', () => closed.add(socket));
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    sockets,
    closed,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The `code` of an error (leasepool's or the driver's), if any. */
export const codeOf = (err: unknown): unknown => (err as { code?: unknown } | null)?.code;

/** Settles with the outcome of `p`, or 'still pending' after `ms`: a bound, so a hang fails the test instead of the run. */
export function within<T>(p: Promise<T>, ms: number): Promise<{ ok: true; value: T } | { ok: false; error: unknown } | 'still pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'still pending'>((resolve) => {
    timer = setTimeout(() => resolve('still pending'), ms);
  });
  return Promise.race([
    p.then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
    pending,
  ]).finally(() => clearTimeout(timer));
}

/** Whether `p` resolved, and the code it rejected with. */
export async function outcomeOf(p: Promise<unknown>): Promise<{ ok: boolean; code: unknown }> {
  try {
    await p;
    return { ok: true, code: undefined };
  } catch (err) {
    return { ok: false, code: codeOf(err) };
  }
}

/** A gate a test opens when it wants a body to go on. */
export function latch(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
