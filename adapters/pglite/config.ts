/**
 * What the PGlite adapter is given: a PGlite instance of your own, or options for one it creates.
 */
import { PGlite } from '@electric-sql/pglite';
import type { PGliteOptions, QueryOptions, Results } from '@electric-sql/pglite';
import { ConfigError } from '../../src/errors';

/**
 * Options for a PGlite instance the adapter creates itself: PGlite's own options (`dataDir` is the
 * one most need: a directory, or `memory://` / omitted for an in-memory database).
 */
export type PgliteAdapterOptions = PGliteOptions;

/**
 * What the adapter needs of a PGlite instance you pass in: a structural type, so an instance of
 * PGlite's ESM build and one of its CommonJS build are both accepted (their class declarations
 * differ to TypeScript).
 */
export interface PgliteInstance {
  query<T = Record<string, unknown>>(text: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>>;
  exec(text: string, options?: QueryOptions): Promise<Results[]>;
  isInTransaction(): boolean;
  close(): Promise<void>;
  readonly closed: boolean;
  readonly waitReady: Promise<void>;
  readonly dataDir?: string | undefined;
}

export function isPglite(value: unknown): value is PgliteInstance {
  if (value instanceof PGlite) return true;
  if (value === null || typeof value !== 'object') return false;
  const v = value as Partial<Record<'query' | 'exec' | 'isInTransaction' | 'close', unknown>>;
  return (
    typeof v.query === 'function' &&
    typeof v.exec === 'function' &&
    typeof v.isInTransaction === 'function' &&
    typeof v.close === 'function' &&
    'waitReady' in value
  );
}

export function validateOptions(source: unknown): PgliteAdapterOptions {
  if (source === undefined) return {};
  if (source === null || typeof source !== 'object') {
    throw new ConfigError([{ field: 'pglite', problem: 'must be a PGlite instance or PGlite options' }]);
  }
  const dataDir = (source as { dataDir?: unknown }).dataDir;
  if (dataDir !== undefined && typeof dataDir !== 'string') {
    throw new ConfigError([{ field: 'dataDir', problem: 'must be a string' }]);
  }
  return { ...(source as PgliteAdapterOptions) };
}
