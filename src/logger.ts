/** A pino-compatible logger subset. `info` and `debug` are optional. */
export interface Logger {
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
  info?(obj: unknown, msg?: string): void;
  debug?(obj: unknown, msg?: string): void;
}

/** Default: warnings and errors to stderr with the pool name; info/debug dropped. */
export function consoleLogger(poolName: string): Logger {
  const prefix = `[leasepool:${poolName}]`;
  const line = (obj: unknown, msg?: string): string => {
    if (typeof obj === 'string') return `${prefix} ${obj}`;
    const text = msg ?? '';
    const stack = (obj as { stack?: unknown } | null)?.stack;
    return typeof stack === 'string' ? `${prefix} ${text}\n${stack}` : `${prefix} ${text}`;
  };
  return {
    // eslint-disable-next-line no-console
    warn: (obj, msg) => console.warn(line(obj, msg)),
    // eslint-disable-next-line no-console
    error: (obj, msg) => console.error(line(obj, msg)),
  };
}
