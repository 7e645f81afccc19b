/** Command-line flags of the bank demo: parsing, validation (one clear line per mistake), --help. */

export type DbKind = 'pglite' | 'pg' | 'mysql';

export interface BankArgs {
  readonly db: DbKind;
  /** Connection URL for pg/mysql (never printed: it may hold a password). */
  readonly url: string | undefined;
  /** Where the URL came from, for messages. */
  readonly urlSource: 'DATABASE_URL' | 'default' | undefined;
  readonly accounts: number;
  readonly balance: number;
  readonly workers: number;
  readonly poolMax: number;
  readonly durationSeconds: number;
  readonly failRate: number;
  readonly leakRate: number;
  readonly slowRate: number;
  readonly killRate: number;
  readonly metricsPort: number;
  /** The lease inspector's port (`--inspector-port`; by default the metrics port + 1, or 0 with `--metrics-port 0`). */
  readonly inspectorPort: number;
  readonly serve: boolean;
  readonly table: string;
  readonly help: boolean;
}

/** A mistake on the command line: printed as one line on stderr, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const DEFAULT_URLS: Readonly<Record<Exclude<DbKind, 'pglite'>, string>> = {
  pg: 'postgres://postgres@127.0.0.1:5432/test',
  mysql: 'mysql://root@127.0.0.1:3306/test',
};

export const DEFAULTS = {
  accounts: 100,
  balance: 1_000,
  workers: 8,
  poolMax: 4,
  durationSeconds: 10,
  failRate: 0.05,
  leakRate: 0.01,
  slowRate: 0.01,
  killRate: 0.005,
  metricsPort: 9464,
  table: 'bank_accounts',
} as const;

export const HELP = `leasepool bank demo: concurrent bank transfers through a leasepool pool, with faults injected
on purpose, a live status line, Prometheus metrics, and a final check that no money was created
or lost.

usage: npm start -- [flags]          (or: npx tsx examples/bank.ts [flags])

database
  --db pglite|pg|mysql   pglite (default): embedded PostgreSQL in memory, nothing to install.
                         pg: PostgreSQL at DATABASE_URL or ${DEFAULT_URLS.pg}
                         mysql: MySQL/MariaDB at DATABASE_URL or ${DEFAULT_URLS.mysql}
                         Without --db, a DATABASE_URL of postgres://… or mysql://… picks the database.
  --table NAME           table to (re)create and seed (default ${DEFAULTS.table}); it is dropped at start

workload
  --accounts N           accounts, each starting with --balance (default ${DEFAULTS.accounts})
  --balance N            starting balance of each account (default ${DEFAULTS.balance})
  --workers N            concurrent workers moving money (default ${DEFAULTS.workers})
  --pool-max N           pool size (default ${DEFAULTS.poolMax}; PGlite is one session: clamped to 1)
  --duration S           seconds to run (default ${DEFAULTS.durationSeconds}); Ctrl-C ends early with the summary

faults (probability per transfer, 0 to 1; 0 turns one off; the first of each is forced early)
  --fail-rate P          throw after the debit: the transfer must roll back (default ${DEFAULTS.failRate})
  --leak-rate P          acquire a lease, open a transaction, never release it: reported by the
                         leak detector with its stack, then reclaimed and rolled back (default ${DEFAULTS.leakRate})
  --slow-rate P          a transaction that outlives its timeoutMs: cancelled and rolled back (default ${DEFAULTS.slowRate})
  --kill-rate P          pg/mysql: kill a worker's connection mid-transaction from an admin
                         connection (pg_terminate_backend / KILL): must be survived (default ${DEFAULTS.killRate})

metrics
  --metrics-port N       serve /metrics on 127.0.0.1:N (default ${DEFAULTS.metricsPort}; 0 = any free port, printed)
  --inspector-port N     serve the live lease inspector (/debug/leases) on 127.0.0.1:N (default: the
                         metrics port + 1, so ${DEFAULTS.metricsPort + 1}; any free port with --metrics-port 0; printed)
  --serve                keep serving /metrics and the inspector after the run, until Ctrl-C

  --help                 this text

exit code: 0 when the total balance is unchanged, 1 when the database cannot be reached or the
run fails, 2 for a bad flag, 3 when the total balance changed.
`;

const VALUE_FLAGS = new Set([
  'db',
  'table',
  'accounts',
  'balance',
  'workers',
  'pool-max',
  'duration',
  'fail-rate',
  'leak-rate',
  'slow-rate',
  'kill-rate',
  'metrics-port',
  'inspector-port',
]);
const BOOLEAN_FLAGS = new Set(['serve', 'help']);

/** Parse `argv` (without node and script) and the environment. Throws `UsageError`. */
export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv): BankArgs {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '-h') {
      flags.add('help');
      continue;
    }
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${quote(arg)} (flags start with --; see --help)`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (BOOLEAN_FLAGS.has(name)) {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      flags.add(name);
      continue;
    }
    if (!VALUE_FLAGS.has(name)) throw new UsageError(`unknown flag --${name} (see --help)`);
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      // A negative number is a value, not a flag.
      if (value === undefined || (value.startsWith('--') && value.length > 2)) throw new UsageError(`--${name} needs a value (see --help)`);
      i++;
    }
    if (values.has(name)) throw new UsageError(`--${name} given twice`);
    values.set(name, value);
  }
  const help = flags.has('help');

  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = values.get(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      throw new UsageError(`--${name} must be an integer from ${min} to ${max} (got ${quote(raw)})`);
    }
    return n;
  };
  const num = (name: string, fallback: number, ok: (n: number) => boolean, what: string): number => {
    const raw = values.get(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new UsageError(`--${name} must be ${what} (got ${quote(raw)})`);
    return n;
  };
  const rate = (name: string, fallback: number): number => num(name, fallback, (n) => n >= 0 && n <= 1, 'a probability from 0 to 1');

  const accounts = int('accounts', DEFAULTS.accounts, 2, 1_000_000);
  const balance = int('balance', DEFAULTS.balance, 1, 1_000_000_000);
  const workers = int('workers', DEFAULTS.workers, 1, 256);
  const poolMax = int('pool-max', DEFAULTS.poolMax, 1, 100);
  const durationSeconds = num('duration', DEFAULTS.durationSeconds, (n) => n > 0 && n <= 86_400, 'a number of seconds above 0, at most 86400');
  const failRate = rate('fail-rate', DEFAULTS.failRate);
  const leakRate = rate('leak-rate', DEFAULTS.leakRate);
  const slowRate = rate('slow-rate', DEFAULTS.slowRate);
  const killRate = rate('kill-rate', DEFAULTS.killRate);
  const metricsPort = int('metrics-port', DEFAULTS.metricsPort, 0, 65_535);
  const inspectorPort = int('inspector-port', metricsPort === 0 ? 0 : Math.min(65_535, metricsPort + 1), 0, 65_535);
  const table = values.get('table') ?? DEFAULTS.table;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(table)) {
    throw new UsageError(`--table must be a lowercase SQL identifier: letters, digits, _ (got ${quote(table)})`);
  }

  const { db, url, urlSource } = pickDatabase(values.get('db'), env['DATABASE_URL']);
  return {
    db,
    url,
    urlSource,
    accounts,
    balance,
    workers,
    poolMax,
    durationSeconds,
    failRate,
    leakRate,
    slowRate,
    killRate,
    metricsPort,
    inspectorPort,
    serve: flags.has('serve'),
    table,
    help,
  };
}

const DB_ALIASES: Readonly<Record<string, DbKind>> = {
  pglite: 'pglite',
  pg: 'pg',
  postgres: 'pg',
  postgresql: 'pg',
  mysql: 'mysql',
  mariadb: 'mysql',
};

function pickDatabase(
  flag: string | undefined,
  envUrl: string | undefined,
): { db: DbKind; url: string | undefined; urlSource: BankArgs['urlSource'] } {
  let fromFlag: DbKind | undefined;
  if (flag !== undefined) {
    fromFlag = DB_ALIASES[flag.toLowerCase()];
    if (fromFlag === undefined) throw new UsageError(`--db must be pglite, pg or mysql (got ${quote(flag)})`);
  }
  const url = envUrl === undefined || envUrl.trim() === '' ? undefined : envUrl.trim();
  // Only the scheme is ever shown: the URL may carry a password.
  const scheme = url === undefined ? undefined : /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  const fromUrl: DbKind | undefined =
    scheme === 'postgres' || scheme === 'postgresql' ? 'pg' : scheme === 'mysql' || scheme === 'mariadb' ? 'mysql' : undefined;

  if (fromFlag === 'pglite') return { db: 'pglite', url: undefined, urlSource: undefined };
  if (url !== undefined && fromUrl === undefined) {
    throw new UsageError(`DATABASE_URL must start with postgres:// or mysql:// (got ${scheme === undefined ? 'no scheme' : `${scheme}://…`})`);
  }
  if (fromFlag !== undefined && fromUrl !== undefined && fromFlag !== fromUrl) {
    throw new UsageError(`--db ${fromFlag} conflicts with DATABASE_URL (${scheme}://…): unset one of them`);
  }
  const db = fromFlag ?? fromUrl ?? 'pglite';
  if (db === 'pglite') return { db, url: undefined, urlSource: undefined };
  if (url !== undefined) {
    // mysql2 does not know the mariadb:// scheme.
    return { db, url: db === 'mysql' ? url.replace(/^mariadb:/i, 'mysql:') : url, urlSource: 'DATABASE_URL' };
  }
  return { db, url: DEFAULT_URLS[db], urlSource: 'default' };
}

function quote(value: string): string {
  const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  return JSON.stringify(shown);
}
