/**
 * A wrong password against a real PostgreSQL server. The shared test server trusts 127.0.0.1, so
 * this file starts a private cluster of the same installed version (initdb, a temp directory, a
 * free port) with SCRAM-SHA-256 authentication over TCP, and checks what leasepool, its adapter
 * and its pg drop-in show when the server rejects the password: the server's 28P01, wrapped in a
 * ConnectError by the adapter, and neither the wrong nor the right password anywhere.
 */
import { inspect } from 'node:util';
import { pgAdapter, Pool } from '../../adapters/pg';
import { ConnectError, createPool, type Pool as LeasePool } from '../../src';
import type { Client } from 'pg';
import { startPrivatePostgres, type PrivateServer } from '../chaos/scenarios/private-server';
import { errorSurfaces } from '../shared/behaviour';
import { captureLogger } from '../helpers/unit';

const PASSWORD = 'Right-Pa55/with:chars';
const WRONG = 'Wrong-Pa55@guess';
let server: PrivateServer;
const pools: LeasePool<Client>[] = [];

const url = (password: string | undefined): string => {
  const { host, port, user, database } = server.endpoint;
  const credentials = password === undefined ? user : `${user}:${encodeURIComponent(password)}`;
  return `postgres://${credentials}@${host}:${port}/${database}`;
};

function expectNoSecret(surfaces: string): void {
  for (const secret of [PASSWORD, WRONG, encodeURIComponent(PASSWORD), encodeURIComponent(WRONG)]) expect(surfaces).not.toContain(secret);
}

beforeAll(async () => {
  server = await startPrivatePostgres({ password: PASSWORD });
}, 90_000);

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 2_000 })));
});

afterAll(async () => {
  await server?.destroy();
});

/** A leasepool pool on the private server; `logs` is everything it logged, as text. */
function pool(password: string | undefined): { readonly pool: LeasePool<Client>; readonly logs: string } {
  const { logger, entries } = captureLogger();
  const p = createPool(pgAdapter(url(password)), { max: 1, connectTimeoutMs: 5_000, acquireTimeoutMs: 5_000, logger, leakDetectionMs: 0 });
  pools.push(p);
  return {
    pool: p,
    get logs() {
      return inspect(entries, { depth: 8 });
    },
  };
}

test('the server really checks passwords: the right one connects, none is refused', async () => {
  const ok = pool(PASSWORD);
  expect(await ok.pool.withLease(async (conn) => (await conn.query<{ u: string }>('SELECT current_user AS u')).rows[0]?.u)).toBe('postgres');
  const none = pool(undefined);
  const err = await none.pool.withLease(async () => 'never').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectError);
});

test('a wrong password: ConnectError (CONNECT_FAILED) with the server\'s 28P01, no password in message, stack, cause or logs', async () => {
  const bad = pool(WRONG);
  let ran = false;
  const err = await bad.pool
    .withLease(async () => {
      ran = true;
    })
    .catch((e: unknown) => e);
  expect(ran).toBe(false);
  expect(err).toBeInstanceOf(ConnectError);
  expect(err).toMatchObject({ code: 'CONNECT_FAILED', cause: { code: '28P01' } });
  expect((err as Error).message).toContain(`${server.endpoint.host}:${server.endpoint.port}/${server.endpoint.database}`);
  expectNoSecret(errorSurfaces(err));
  expectNoSecret(bad.logs);
  expect(bad.pool.stats()).toMatchObject({ size: 0, active: 0, pending: 0 });
});

test("the pg drop-in: pg's own 28P01 error, as pg.Pool gives it, without the password", async () => {
  const dropIn = new Pool({ connectionString: url(WRONG), max: 1, leasepool: { logger: captureLogger().logger, endTimeoutMs: 2_000 } });
  try {
    const err = await dropIn.query('SELECT 1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: '28P01' });
    expect(err).not.toBeInstanceOf(ConnectError);
    expectNoSecret(errorSurfaces(err));
    expect(dropIn.totalCount).toBe(0);
  } finally {
    await dropIn.end();
  }
});
