/**
 * The error classes: exported from the package entry point, each with its stable code,
 * a name equal to the class name, and a shared base class.
 */
import * as leasepool from '../../src';

const EXPECTED: Record<string, string> = {
  PoolClosedError: 'POOL_CLOSED',
  AcquireTimeoutError: 'ACQUIRE_TIMEOUT',
  PoolQueueFullError: 'POOL_QUEUE_FULL',
  LeaseReleasedError: 'LEASE_RELEASED',
  LeaseRevokedError: 'LEASE_REVOKED',
  LeaseTimeoutError: 'LEASE_TIMEOUT',
  NestedAcquireError: 'NESTED_ACQUIRE',
  TxOutcomeUnknownError: 'TX_OUTCOME_UNKNOWN',
  ConnectError: 'CONNECT_FAILED',
  ConfigError: 'INVALID_CONFIG',
  CleanupError: 'CLEANUP_FAILED',
  LeaseMisuseError: 'LEASE_MISUSE',
};

function instances(): Record<string, Error & { code: string }> {
  const stats = { size: 1, active: 1, idle: 0, pending: 2, max: 1 };
  return {
    PoolClosedError: new leasepool.PoolClosedError('p'),
    AcquireTimeoutError: new leasepool.AcquireTimeoutError('p', 100, stats),
    PoolQueueFullError: new leasepool.PoolQueueFullError('p', 5),
    LeaseReleasedError: new leasepool.LeaseReleasedError(7),
    LeaseRevokedError: new leasepool.LeaseRevokedError(7, 'shutdown'),
    LeaseTimeoutError: new leasepool.LeaseTimeoutError(7, 100),
    NestedAcquireError: new leasepool.NestedAcquireError('p'),
    TxOutcomeUnknownError: new leasepool.TxOutcomeUnknownError({ cause: new Error('lost') }),
    ConnectError: new leasepool.ConnectError('could not connect', { cause: new Error('refused') }),
    ConfigError: new leasepool.ConfigError([{ field: 'max', problem: 'must be an integer' }]),
    CleanupError: new leasepool.CleanupError([new Error('c')]),
    LeaseMisuseError: new leasepool.LeaseMisuseError('misuse'),
  };
}

test.each(Object.entries(EXPECTED))('%s is exported with code %s', (name, code) => {
  const Ctor = (leasepool as unknown as Record<string, unknown>)[name];
  expect(typeof Ctor).toBe('function');
  const err = instances()[name]!;
  expect(err).toBeInstanceOf(Ctor as new (...args: never[]) => unknown);
  expect(err).toBeInstanceOf(leasepool.LeasepoolError);
  expect(err).toBeInstanceOf(Error);
  expect(err.code).toBe(code);
  expect(err.name).toBe(name);
  expect(err.message.length).toBeGreaterThan(0);
  expect(err.stack).toContain(name);
});

test('details carried by the errors', () => {
  const all = instances();
  expect(all['AcquireTimeoutError']!.message).toMatch(/total=1, active=1, idle=0, waiting=2, max=1/);
  expect(all['ConfigError']).toMatchObject({ fields: ['max'] });
  expect(all['LeaseRevokedError']).toMatchObject({ reason: 'shutdown' });
  expect(all['LeaseTimeoutError']).toMatchObject({ timeoutMs: 100 });
  expect(all['TxOutcomeUnknownError']!.cause).toMatchObject({ message: 'lost' });
});

test('suppressedErrors() of values that carry none', () => {
  expect(leasepool.suppressedErrors(new Error('x'))).toEqual([]);
  expect(leasepool.suppressedErrors('string')).toEqual([]);
  expect(leasepool.suppressedErrors(null)).toEqual([]);
  expect(leasepool.suppressedErrors(undefined)).toEqual([]);
});

test('the package entry point exports the public API', () => {
  for (const name of ['createPool', 'withTx', 'shutdownOnSignals', 'Pool', 'Lease', 'redact', 'suppressedErrors']) {
    expect([name, typeof (leasepool as unknown as Record<string, unknown>)[name]]).toEqual([name, 'function']);
  }
});

test("redact masks passwords but leaves MySQL's \"(using password: YES)\" readable", () => {
  expect(leasepool.redact("Access denied for user 'app'@'10.0.0.1' (using password: YES)")).toBe("Access denied for user 'app'@'10.0.0.1' (using password: YES)");
  expect(leasepool.redact("Access denied for user 'app'@'10.0.0.1' (using password: NO)")).toBe("Access denied for user 'app'@'10.0.0.1' (using password: NO)");
  expect(leasepool.redact('password: YESman')).toBe('password: ***');
  expect(leasepool.redact('host=db password=hunter2 user=app')).toBe('host=db password=*** user=app');
});
