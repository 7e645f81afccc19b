/**
 * The transaction dialect: START TRANSACTION with its characteristics, COMMIT, ROLLBACK and
 * savepoints, from fixed tables only.
 */
import type { BeginOptions, IsolationLevel, TxDialect } from '../../src/adapter';
import { ConfigError } from '../../src/errors';

export const ISOLATION: Readonly<Record<IsolationLevel, string>> = {
  'read uncommitted': 'READ UNCOMMITTED',
  'read committed': 'READ COMMITTED',
  'repeatable read': 'REPEATABLE READ',
  serializable: 'SERIALIZABLE',
};

export const SAVEPOINT_NAME = /^[a-z_][a-z0-9_]*$/;

export function validateBeginOptions(opts: BeginOptions): void {
  const problems: { field: string; problem: string }[] = [];
  if (opts.deferrable === true) {
    problems.push({ field: 'deferrable', problem: 'is not supported by MySQL/MariaDB (PostgreSQL only)' });
  }
  const isolation: unknown = opts.isolation;
  // typeof first: an object key would be converted (and may throw) before the lookup.
  if (isolation !== undefined && !(typeof isolation === 'string' && Object.prototype.hasOwnProperty.call(ISOLATION, isolation))) {
    problems.push({ field: 'isolation', problem: `must be one of ${Object.keys(ISOLATION).join(', ')}` });
  }
  if (opts.readOnly !== undefined && typeof opts.readOnly !== 'boolean') {
    problems.push({ field: 'readOnly', problem: 'must be a boolean' });
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

export function savepointName(name: string): string {
  if (!SAVEPOINT_NAME.test(name)) {
    throw new ConfigError([{ field: 'savepoint name', problem: 'must match /^[a-z_][a-z0-9_]*$/' }]);
  }
  return name;
}

/**
 * MySQL transaction control.
 * - `begin({ isolation })` sends `SET TRANSACTION ISOLATION LEVEL …` first (it applies to the next
 *   transaction only), then `START TRANSACTION`.
 * - `readOnly: true` → `START TRANSACTION READ ONLY`; `readOnly: false` → `START TRANSACTION READ WRITE`
 *   (explicit, so it overrides a session default of `transaction_read_only=1`); omitted → plain
 *   `START TRANSACTION` (the session default).
 * - `deferrable: true` → `ConfigError`; `deferrable: false` is accepted and means nothing in MySQL.
 */
export const mysqlDialect: TxDialect = {
  begin(opts: BeginOptions): readonly string[] {
    validateBeginOptions(opts);
    const statements: string[] = [];
    if (opts.isolation !== undefined) statements.push(`SET TRANSACTION ISOLATION LEVEL ${ISOLATION[opts.isolation]}`);
    if (opts.readOnly === true) statements.push('START TRANSACTION READ ONLY');
    else if (opts.readOnly === false) statements.push('START TRANSACTION READ WRITE');
    else statements.push('START TRANSACTION');
    return statements;
  },
  commit: 'COMMIT',
  rollback: 'ROLLBACK',
  savepoint: (name) => `SAVEPOINT ${savepointName(name)}`,
  releaseSavepoint: (name) => `RELEASE SAVEPOINT ${savepointName(name)}`,
  rollbackToSavepoint: (name) => `ROLLBACK TO SAVEPOINT ${savepointName(name)}`,
};
