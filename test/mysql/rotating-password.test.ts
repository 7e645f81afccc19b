/**
 * A password that rotates while the pool runs: mysql2's `password` as an async function, called for
 * every new connection, against a user of this file's own (`lp_rotating_24`, created and dropped
 * here) whose password is changed with `ALTER USER … IDENTIFIED BY` between connections.
 */
import { inspect } from 'node:util';
import { createConnection, type Connection } from 'mysql2/promise';
import { createPool as createDropInPool, mysqlAdapter } from '../../adapters/mysql2';
import { ConnectError, createPool, type Pool as LeasePool } from '../../src';
import { errorSurfaces } from '../shared/behaviour';
import { captureLogger } from '../helpers/unit';

const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const server = new URL(MYSQL_URL);
const HOST = server.hostname;
const PORT = server.port === '' ? 3306 : Number(server.port);
const DB = decodeURIComponent(server.pathname.slice(1));
const USER = 'lp_rotating_24';
const FIRST = 'First-Secret/0ne:x';
const SECOND = 'Second-Secret/tw0@y';

let admin: Connection;
const pools: LeasePool<Connection>[] = [];

beforeAll(async () => {
  admin = await createConnection(MYSQL_URL);
  await admin.query(`DROP USER IF EXISTS '${USER}'@'%'`);
  await admin.query(`CREATE USER '${USER}'@'%' IDENTIFIED BY ?`, [FIRST]);
  await admin.query(`GRANT SELECT ON \`${DB}\`.* TO '${USER}'@'%'`);
});

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 2_000 })));
});

afterAll(async () => {
  await admin.query(`DROP USER IF EXISTS '${USER}'@'%'`);
  await admin.end();
});

function poolWith(password: () => string | Promise<string>, connectTimeoutMs = 5_000) {
  const { logger, entries } = captureLogger();
  // maxUses 1: every lease opens a new connection, so every lease calls the password function.
  const pool = createPool(mysqlAdapter({ host: HOST, port: PORT, database: DB, user: USER, password }), {
    max: 2,
    maxUses: 1,
    connectTimeoutMs,
    acquireTimeoutMs: 5_000,
    leakDetectionMs: 0,
    logger,
  });
  pools.push(pool);
  return { pool, logs: () => inspect(entries, { depth: 8 }) };
}

async function whoAmI(pool: LeasePool<Connection>): Promise<string | undefined> {
  return pool.withLease(async (conn) => {
    const [rows] = await conn.query('SELECT CURRENT_USER() AS u');
    return (rows as { u: string }[])[0]?.u;
  });
}

function expectNoSecret(text: string): void {
  for (const secret of [FIRST, SECOND, encodeURIComponent(FIRST), encodeURIComponent(SECOND)]) expect(text).not.toContain(secret);
}

test('called for each new connection; ALTER USER … IDENTIFIED BY while the pool runs is followed at the next connect', async () => {
  await admin.query(`ALTER USER '${USER}'@'%' IDENTIFIED BY ?`, [FIRST]);
  let current = FIRST;
  let calls = 0;
  const { pool, logs } = poolWith(async () => {
    calls++;
    await Promise.resolve();
    return current;
  });
  expect(await whoAmI(pool)).toBe(`${USER}@%`);
  expect(await whoAmI(pool)).toBe(`${USER}@%`);
  expect(calls).toBe(2);

  const held = await pool.acquire();
  await admin.query(`ALTER USER '${USER}'@'%' IDENTIFIED BY ?`, [SECOND]);
  const [rows] = await held.conn.query('SELECT 1 AS one');
  expect(rows).toEqual([{ one: 1 }]);
  const stale = await whoAmI(pool).catch((e: unknown) => e);
  expect(stale).toBeInstanceOf(ConnectError);
  expect(stale).toMatchObject({ code: 'CONNECT_FAILED', cause: { errno: 1045 } });
  expectNoSecret(errorSurfaces(stale));

  current = SECOND;
  expect(await whoAmI(pool)).toBe(`${USER}@%`);
  await held.release();
  expectNoSecret(logs());
});

test('a rejecting password function: ConnectError with the cause, no connection made', async () => {
  const { pool } = poolWith(() => Promise.reject(new Error('vault said no')));
  const err = await whoAmI(pool).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectError);
  expect((err as Error).message).toContain('password function failed');
  expect(err).toMatchObject({ cause: { message: 'vault said no' } });
  expect(pool.stats()).toMatchObject({ size: 0, active: 0 });
});

test('a password function that never answers is bounded by connectTimeoutMs', async () => {
  const { pool } = poolWith(() => new Promise<string>(() => undefined), 300);
  const started = performance.now();
  const err = await whoAmI(pool).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectError);
  expect((err as Error).message).toMatch(/timed out after 300 ms/);
  expect(performance.now() - started).toBeLessThan(3_000);
});

test('a synchronous password function works too, and a throwing one is a ConnectError', async () => {
  await admin.query(`ALTER USER '${USER}'@'%' IDENTIFIED BY ?`, [FIRST]);
  expect(await whoAmI(poolWith(() => FIRST).pool)).toBe(`${USER}@%`);
  const err = await whoAmI(
    poolWith(() => {
      throw new Error('no token');
    }).pool,
  ).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectError);
});

test('the mysql2 drop-in createPool takes the same password function', async () => {
  await admin.query(`ALTER USER '${USER}'@'%' IDENTIFIED BY ?`, [FIRST]);
  let calls = 0;
  const dropIn = createDropInPool({ host: HOST, port: PORT, database: DB, user: USER, password: async () => (calls++, FIRST), connectionLimit: 1, leasepool: { leakDetectionMs: 0 } });
  try {
    const [rows] = await dropIn.query('SELECT CURRENT_USER() AS u');
    expect(rows).toEqual([{ u: `${USER}@%` }]);
    expect(calls).toBe(1);
  } finally {
    await dropIn.end();
  }
});
