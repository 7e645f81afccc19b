/**
 * A password that rotates while the pool runs: `password` as an async function, called for every
 * new connection. The shared server trusts 127.0.0.1, so this file starts a private cluster with
 * SCRAM-SHA-256 over TCP, creates a role of its own, and changes its password with
 * `ALTER ROLE … PASSWORD` between connections.
 */
import { inspect } from 'node:util';
import { Client } from 'pg';
import { pgAdapter, Pool as PgCompatPool } from '../../adapters/pg';
import { ConnectError, createPool, type Pool as LeasePool } from '../../src';
import { startPrivatePostgres, type PrivateServer } from '../chaos/scenarios/private-server';
import { errorSurfaces } from '../shared/behaviour';
import { captureLogger } from '../helpers/unit';

const ADMIN_PASSWORD = 'Admin-Pa55/rot';
const ROLE = 'lp_rotating_24';
const FIRST = 'First-Secret/0ne:x';
const SECOND = 'Second-Secret/tw0@y';
let server: PrivateServer;
const pools: LeasePool<Client>[] = [];

async function admin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const { host, port, database } = server.endpoint;
  const c = new Client({ host, port, database, user: 'postgres', password: ADMIN_PASSWORD });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function setPassword(password: string): Promise<void> {
  // The password is a literal in ALTER ROLE; quote it for SQL (no quote characters in these).
  await admin((c) => c.query(`ALTER ROLE ${ROLE} PASSWORD '${password}'`));
}

beforeAll(async () => {
  server = await startPrivatePostgres({ password: ADMIN_PASSWORD });
  await admin((c) => c.query(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${FIRST}'`));
}, 90_000);

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 2_000 })));
});

afterAll(async () => {
  if (server !== undefined) {
    await admin((c) => c.query(`DROP ROLE IF EXISTS ${ROLE}`)).catch(() => undefined);
    await server.destroy();
  }
});

function poolWith(password: () => string | Promise<string>, options: { connectTimeoutMs?: number } = {}) {
  const { host, port, database } = server.endpoint;
  const { logger, entries } = captureLogger();
  // maxUses 1: every lease opens a new connection, so every lease calls the password function.
  const pool = createPool(pgAdapter({ host, port, database, user: ROLE, password }), {
    max: 2,
    maxUses: 1,
    connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
    acquireTimeoutMs: 5_000,
    leakDetectionMs: 0,
    logger,
  });
  pools.push(pool);
  return { pool, logs: () => inspect(entries, { depth: 8 }) };
}

const whoAmI = (pool: LeasePool<Client>): Promise<string | undefined> =>
  pool.withLease(async (conn) => (await conn.query<{ u: string }>('SELECT current_user AS u')).rows[0]?.u);

function expectNoSecret(text: string): void {
  for (const secret of [FIRST, SECOND, encodeURIComponent(FIRST), encodeURIComponent(SECOND)]) expect(text).not.toContain(secret);
}

test('the password function is called for each new connection; a rotation on the server is followed without restarting the pool', async () => {
  await setPassword(FIRST);
  let current = FIRST;
  let calls = 0;
  const { pool, logs } = poolWith(async () => {
    calls++;
    await Promise.resolve();
    return current;
  });
  expect(await whoAmI(pool)).toBe(ROLE);
  expect(await whoAmI(pool)).toBe(ROLE);
  expect(calls).toBe(2);

  // A lease held across the rotation keeps its session; the secret store still hands out the old
  // password for a moment: new connections fail, without the secret anywhere.
  const held = await pool.acquire();
  await setPassword(SECOND);
  expect((await held.conn.query<{ u: string }>('SELECT current_user AS u')).rows[0]?.u).toBe(ROLE);
  const stale = await whoAmI(pool).catch((e: unknown) => e);
  expect(stale).toBeInstanceOf(ConnectError);
  expect(stale).toMatchObject({ code: 'CONNECT_FAILED', cause: { code: '28P01' } });
  expectNoSecret(errorSurfaces(stale));

  // The store catches up: the next connection uses the new password.
  current = SECOND;
  expect(await whoAmI(pool)).toBe(ROLE);
  await held.release();
  expectNoSecret(logs());
  expect(calls).toBeGreaterThanOrEqual(4);
});

test('a password function that rejects: ConnectError naming the target, with the function\'s error as cause, no connection made', async () => {
  const { pool } = poolWith(() => Promise.reject(new Error('vault said no')));
  const err = await whoAmI(pool).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectError);
  expect((err as Error).message).toContain('password function failed');
  expect((err as Error).message).toContain(`${server.endpoint.port}`);
  expect(err).toMatchObject({ cause: { message: 'vault said no' } });
  expect(pool.stats()).toMatchObject({ size: 0, active: 0 });
});

test('a password function that never answers is bounded by connectTimeoutMs', async () => {
  const { pool } = poolWith(() => new Promise<string>(() => undefined), { connectTimeoutMs: 300 });
  const started = performance.now();
  const err = await whoAmI(pool).catch((e: unknown) => e);
  const took = performance.now() - started;
  expect(err).toBeInstanceOf(ConnectError);
  expect((err as Error).message).toMatch(/timed out after 300 ms/);
  expect(took).toBeLessThan(3_000);
});

test('a password function that returns a non-string fails clearly', async () => {
  const { pool } = poolWith((() => Promise.resolve(42)) as unknown as () => Promise<string>);
  const err = await whoAmI(pool).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectError);
  expect((err as Error).message).toContain('returned number, not a string');
});

test('the returned password is masked in a connect error of that connection', async () => {
  await setPassword(FIRST);
  // The right password but a database that does not exist: the server error cannot contain the
  // password, but pg's and ours must not either (the value is added to the secrets of the connect).
  const { host, port } = server.endpoint;
  const pool = createPool(pgAdapter({ host, port, database: 'no_such_db_24', user: ROLE, password: async () => FIRST }), {
    max: 1,
    connectTimeoutMs: 5_000,
    acquireTimeoutMs: 5_000,
    leakDetectionMs: 0,
  });
  pools.push(pool);
  const err = await whoAmI(pool).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectError);
  expectNoSecret(errorSurfaces(err));
});

test('the pg drop-in Pool takes the same password function', async () => {
  await setPassword(FIRST);
  const { host, port, database } = server.endpoint;
  let calls = 0;
  const dropIn = new PgCompatPool({ host, port, database, user: ROLE, password: async () => (calls++, FIRST), max: 1 });
  try {
    const { rows } = await dropIn.query<{ u: string }>('SELECT current_user AS u');
    expect(rows[0]?.u).toBe(ROLE);
    expect(calls).toBe(1);
  } finally {
    await dropIn.end();
  }
});
