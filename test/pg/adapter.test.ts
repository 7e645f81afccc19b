/**
 * The pg adapter against a real PostgreSQL (PG_URL, default postgres://postgres@127.0.0.1:5432/test).
 * Adapter level only: no pool. Tables are prefixed `pg_adapter_`.
 */
import { once } from 'node:events';
import * as net from 'node:net';
import { inspect } from 'node:util';
import { Client } from 'pg';
import { pgAdapter } from '../../adapters/pg';
import type { Adapter, ConnectionEvents } from '../../src/adapter';
import { ConfigError, ConnectError } from '../../src/errors';
import { pgPasswordServer } from '../helpers/pg-password-server';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const pgUrl = new URL(PG_URL);
const PG_HOST = pgUrl.hostname;
const PG_PORT = Number(pgUrl.port || 5432);
const PG_DB = pgUrl.pathname.slice(1);
const ROLE = 'lp_pg_adapter_role';

const adapter = pgAdapter(PG_URL);
let admin: Client;

/** Every connection a test opens, closed after each test even when it failed. */
const opened: { adapter: Adapter<Client>; client: Client }[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

function events(): ConnectionEvents & { onError: jest.Mock } {
  return { onError: jest.fn() };
}

async function connect(a: Adapter<Client> = adapter, ev: ConnectionEvents = events()): Promise<Client> {
  const client = await a.connect(AbortSignal.timeout(5000), ev);
  opened.push({ adapter: a, client });
  return client;
}

/** Poll a condition that depends on another process (the server); bounded, never a blind sleep. */
async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function pidOf(client: Client): number {
  const pid = (client as unknown as { processID: number | null }).processID;
  if (typeof pid !== 'number') throw new Error('no backend pid');
  return pid;
}

/** Wait for the ReadyForQuery of the statement on the wire (pg emits 'drain' after it). */
async function wireIdle(client: Client): Promise<void> {
  if ((client as unknown as { readyForQuery?: boolean }).readyForQuery === false) await once(client, 'drain');
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/**
 * A TCP server that accepts and never answers (not even the peer's FIN: half-open allowed).
 * Tracks its sockets and what they received; "closed" means the peer ended or reset its side.
 */
async function blackhole(): Promise<{
  port: number;
  sockets: net.Socket[];
  received: Map<net.Socket, Buffer>;
  allClosed(ms: number): Promise<boolean>;
  close(): Promise<void>;
}> {
  const sockets: net.Socket[] = [];
  const received = new Map<net.Socket, Buffer>();
  const closed = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    received.set(socket, Buffer.alloc(0));
    socket.on('data', (chunk: Buffer) => received.set(socket, Buffer.concat([received.get(socket) ?? Buffer.alloc(0), chunk])));
    socket.on('error', () => closed.add(socket));
    socket.on('end', () => closed.add(socket));
    socket.on('close', () => closed.add(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    sockets,
    received,
    allClosed: async (ms) => {
      const deadline = Date.now() + ms;
      while (sockets.some((s) => !closed.has(s))) {
        if (Date.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, 10));
      }
      return true;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A TCP proxy to PostgreSQL that can freeze (stop forwarding, keep sockets open) or cut connections. */
async function proxy(): Promise<{ port: number; freeze(): void; cut(): void; close(): Promise<void> }> {
  const pairs: [net.Socket, net.Socket][] = [];
  const server = net.createServer((down) => {
    const up = net.connect(PG_PORT, PG_HOST);
    down.on('error', () => undefined);
    up.on('error', () => undefined);
    down.pipe(up);
    up.pipe(down);
    pairs.push([down, up]);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    freeze: () => {
      for (const [down, up] of pairs) {
        down.unpipe(up);
        up.unpipe(down);
        down.pause();
        up.pause();
      }
    },
    cut: () => {
      for (const [down, up] of pairs) {
        down.destroy();
        up.destroy();
      }
    },
    close: async () => {
      for (const [down, up] of pairs) {
        down.destroy();
        up.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

beforeAll(async () => {
  admin = new Client(PG_URL);
  admin.on('error', () => undefined);
  await admin.connect();
  await admin.query(`DO $$ BEGIN CREATE ROLE ${ROLE} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
  await admin.query(`ALTER ROLE ${ROLE} SET statement_timeout = '7s'`);
  await admin.query('DROP TABLE IF EXISTS pg_adapter_rows');
  await admin.query('CREATE TABLE pg_adapter_rows (id int PRIMARY KEY, v int NOT NULL)');
  await admin.query(`GRANT ALL ON pg_adapter_rows TO ${ROLE}`);
});

beforeEach(async () => {
  await admin.query('TRUNCATE pg_adapter_rows');
  await admin.query('INSERT INTO pg_adapter_rows VALUES (1, 0), (2, 0)');
});

afterEach(async () => {
  for (const { adapter: a, client } of opened.splice(0)) await a.close(client);
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

afterAll(async () => {
  await admin.query('DROP TABLE IF EXISTS pg_adapter_rows');
  await admin.query(`DROP ROLE IF EXISTS ${ROLE}`);
  await admin.end();
});

describe('identity and config', () => {
  test('name, target without credentials, lifecycle methods, no connection cap', () => {
    expect(adapter.name).toBe('pg');
    expect(adapter.target).toBe(`${PG_HOST}:${PG_PORT}/${PG_DB}`);
    const withPassword = pgAdapter('postgres://alice:Hunter2-secret@db.example:6543/app');
    expect(withPassword.target).toBe('db.example:6543/app');
    expect(pgAdapter({ host: '::1', port: 5433, database: 'x', password: 'p' }).target).toBe('[::1]:5433/x');
    expect(adapter.lifecycleMethods).toEqual({ release: ['release'], destroy: ['end'] });
    expect(adapter.statementMethods).toEqual(['query']);
    expect(adapter.maxConnections).toBeUndefined();
  });

  test('bad options throw ConfigError naming every bad field', () => {
    const err = (() => {
      try {
        pgAdapter(PG_URL, { statementTimeoutMs: -1, lockTimeoutMs: 1.5, idleInTransactionSessionTimeoutMs: 2 ** 31, closeTimeoutMs: 0 });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('INVALID_CONFIG');
    expect([...(err as ConfigError).fields].sort()).toEqual(
      ['closeTimeoutMs', 'idleInTransactionSessionTimeoutMs', 'lockTimeoutMs', 'statementTimeoutMs'].sort(),
    );
    expect(() => pgAdapter(PG_URL, { statementTimeout: 5 } as never)).toThrow(ConfigError);
    expect(() => pgAdapter(PG_URL, { statementTimeoutMs: '5' as unknown as number })).toThrow(ConfigError);
  });

  test('a startup parameter given twice (option and pg config / URL) is a ConfigError, not a silent winner', () => {
    expect(() => pgAdapter({ connectionString: PG_URL, statement_timeout: 10 }, { statementTimeoutMs: 5 })).toThrow(
      /statementTimeoutMs conflicts with statement_timeout/,
    );
    expect(() => pgAdapter(`${PG_URL}?lock_timeout=10`, { lockTimeoutMs: 5 })).toThrow(/lockTimeoutMs conflicts/);
    expect(() => pgAdapter(`${PG_URL}?lock_timeout=10`, { statementTimeoutMs: 5 })).not.toThrow();
  });
});

describe('connect and close', () => {
  test('connects, validates, reports idle, closes without reporting an error', async () => {
    const ev = events();
    const client = await adapter.connect(AbortSignal.timeout(5000), ev);
    expect(client).toBeInstanceOf(Client);
    await adapter.validate(client);
    expect(adapter.txStatus?.(client)).toBe('idle');
    const pid = pidOf(client);
    await adapter.close(client);
    await adapter.close(client); // idempotent
    expect(ev.onError).not.toHaveBeenCalled();
    const err = await rejectionOf(client.query('SELECT 1'));
    expect(adapter.isFatal(err)).toBe(true);
    await waitUntil('the backend is gone', async () => {
      const r = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [pid]);
      return r.rows[0].n === 0;
    });
  });

  test('exec runs a control statement', async () => {
    const client = await connect();
    await adapter.exec(client, 'BEGIN');
    expect(adapter.txStatus?.(client)).toBe('in_tx');
    await adapter.exec(client, 'ROLLBACK');
    expect(adapter.txStatus?.(client)).toBe('idle');
  });

  test('connect timeout is honoured against a server that never answers; no socket left', async () => {
    const hole = await blackhole();
    cleanups.push(() => hole.close());
    const a = pgAdapter({ host: '127.0.0.1', port: hole.port, user: 'nobody', database: 'nowhere' });
    const started = Date.now();
    const err = await rejectionOf(a.connect(AbortSignal.timeout(300), events()));
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe('CONNECT_FAILED');
    expect((err as Error).message).toContain(`127.0.0.1:${hole.port}/nowhere`);
    expect((err as Error).message).toMatch(/aborted/);
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(1500);
    expect(hole.sockets).toHaveLength(1); // the TCP handshake did happen
    expect(await hole.allClosed(1000)).toBe(true);
  });

  test('an already aborted signal rejects at once with ConnectError', async () => {
    const controller = new AbortController();
    controller.abort(new Error('shutting down'));
    const err = await rejectionOf(adapter.connect(controller.signal, events()));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as Error).message).toContain('shutting down');
  });

  test('close never hangs on a dead peer: the socket is destroyed after closeTimeoutMs', async () => {
    const p = await proxy();
    cleanups.push(() => p.close());
    const a = pgAdapter({ host: '127.0.0.1', port: p.port, user: pgUrl.username, database: PG_DB }, { closeTimeoutMs: 200 });
    const ev = events();
    const client = await a.connect(AbortSignal.timeout(5000), ev);
    await a.validate(client);
    p.freeze();
    const started = Date.now();
    await a.close(client);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(150);
    expect(elapsed).toBeLessThan(1000);
    expect(ev.onError).not.toHaveBeenCalled();
  });

  test('a connection cut by the network is reported once through events.onError and is fatal', async () => {
    const p = await proxy();
    cleanups.push(() => p.close());
    const a = pgAdapter({ host: '127.0.0.1', port: p.port, user: pgUrl.username, database: PG_DB });
    let reported!: (err: unknown) => void;
    const onErrorCalled = new Promise<unknown>((r) => (reported = r));
    const ev = { onError: jest.fn((err: unknown) => reported(err)) };
    const client = await a.connect(AbortSignal.timeout(5000), ev);
    opened.push({ adapter: a, client });
    p.cut();
    const err = await onErrorCalled;
    expect(a.isFatal(err)).toBe(true);
    expect(adapter.isFatal(await rejectionOf(client.query('SELECT 1')))).toBe(true);
    expect(ev.onError).toHaveBeenCalledTimes(1);
  });
});

describe('connect failures never leak the password', () => {
  function expectNoSecret(err: unknown, secrets: string[]): void {
    const e = err as Error & { cause?: Error };
    const surfaces = [e.message, e.stack ?? '', String(e.cause?.message), String(e.cause?.stack), inspect(err, { depth: 10 }), JSON.stringify(err)];
    for (const surface of surfaces) for (const secret of secrets) expect(surface).not.toContain(secret);
  }

  test('wrong password (server asks for it, rejects it, even echoes it): ConnectError with 28P01, redacted', async () => {
    // pg_hba on the test server is `trust`, so real password failure is reproduced by a protocol-level fake.
    const srv = await pgPasswordServer();
    cleanups.push(() => srv.close());
    const password = 'S3cr@t-pw/with:chars';
    const url = `postgres://lp_pw_user:${encodeURIComponent(password)}@127.0.0.1:${srv.port}/lpdb`;
    const a = pgAdapter(url);
    expect(a.target).toBe(`127.0.0.1:${srv.port}/lpdb`);
    const err = await rejectionOf(a.connect(AbortSignal.timeout(5000), events()));
    expect(srv.received).toEqual([password]); // the password really went through the auth exchange
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as Error).message).toContain(`127.0.0.1:${srv.port}/lpdb`);
    expect((err as Error).message).toContain('28P01');
    expect(((err as Error).cause as { code?: string }).code).toBe('28P01');
    expect(adapter.isFatal(err)).toBe(false); // a ConnectError is not a query error on a live connection
    expectNoSecret(err, [password, encodeURIComponent(password)]);

    const b = pgAdapter({ host: '127.0.0.1', port: srv.port, user: 'lp_pw_user', password: 'obj-Pa55word', database: 'lpdb' });
    const err2 = await rejectionOf(b.connect(AbortSignal.timeout(5000), events()));
    expect(err2).toBeInstanceOf(ConnectError);
    expectNoSecret(err2, ['obj-Pa55word']);
  });

  test('non-existent database and role on the real server: ConnectError, password from the URL never shown', async () => {
    const password = 'TopSecret-4242';
    const noDb = pgAdapter(`postgres://${pgUrl.username}:${password}@${PG_HOST}:${PG_PORT}/lp_no_such_db`);
    const err = await rejectionOf(noDb.connect(AbortSignal.timeout(5000), events()));
    expect(err).toBeInstanceOf(ConnectError);
    expect(((err as Error).cause as { code?: string }).code).toBe('3D000');
    expect((err as Error).message).toContain(`${PG_HOST}:${PG_PORT}/lp_no_such_db`);
    expectNoSecret(err, [password]);

    const noRole = pgAdapter(`postgres://lp_no_such_role:${password}@${PG_HOST}:${PG_PORT}/${PG_DB}`);
    const err2 = await rejectionOf(noRole.connect(AbortSignal.timeout(5000), events()));
    expect(err2).toBeInstanceOf(ConnectError);
    expect(((err2 as Error).cause as { code?: string }).code).toBe('28000');
    expectNoSecret(err2, [password]);
  });

  test('connection refused: ConnectError with ECONNREFUSED cause', async () => {
    const hole = await blackhole();
    const port = hole.port;
    await hole.close(); // nothing listens there any more
    const a = pgAdapter({ host: '127.0.0.1', port, password: 'refused-secret' });
    const err = await rejectionOf(a.connect(AbortSignal.timeout(5000), events()));
    expect(err).toBeInstanceOf(ConnectError);
    expect(((err as Error).cause as { code?: string }).code).toBe('ECONNREFUSED');
    expect(adapter.isFatal((err as Error).cause)).toBe(true);
  });
});

describe('startup session parameters', () => {
  test('timeouts are sent in the startup packet (pg_settings source "client"), not by SET', async () => {
    const a = pgAdapter(PG_URL, { statementTimeoutMs: 1500, lockTimeoutMs: 250, idleInTransactionSessionTimeoutMs: 60_000 });
    const client = await connect(a);
    const r = await client.query(
      `SELECT name, setting, source FROM pg_settings
       WHERE name IN ('statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout') ORDER BY name`,
    );
    expect(r.rows).toEqual([
      { name: 'idle_in_transaction_session_timeout', setting: '60000', source: 'client' },
      { name: 'lock_timeout', setting: '250', source: 'client' },
      { name: 'statement_timeout', setting: '1500', source: 'client' },
    ]);
    const err = await rejectionOf(client.query('SELECT pg_sleep(5)'));
    expect((err as { code?: string }).code).toBe('57014');
  });

  test('0 is sent too, overriding a role default', async () => {
    const roleUrl = new URL(PG_URL);
    roleUrl.username = ROLE;
    const plain = await connect(pgAdapter(roleUrl.toString()));
    expect((await plain.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('7s');
    const zero = await connect(pgAdapter(roleUrl.toString(), { statementTimeoutMs: 0 }));
    expect((await zero.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('0');
  });
});

describe('transaction status and dialect', () => {
  test('txStatus follows BEGIN → in_tx, failing statement → failed, ROLLBACK → idle', async () => {
    const client = await connect();
    expect(adapter.txStatus?.(client)).toBe('idle');
    await client.query('BEGIN');
    expect(adapter.txStatus?.(client)).toBe('in_tx');
    const err = await rejectionOf(client.query('SELECT 1/0'));
    expect((err as { code?: string }).code).toBe('22012');
    expect(adapter.isFatal(err)).toBe(false);
    expect(adapter.isRetryable(err)).toBe(false);
    await wireIdle(client);
    expect(adapter.txStatus?.(client)).toBe('failed');
    await client.query('ROLLBACK');
    expect(adapter.txStatus?.(client)).toBe('idle');
  });

  test('right after a failed statement rejects, txStatus is never a stale idle/in_tx', async () => {
    const client = await connect();
    // From idle, one simple query that opens a transaction and fails in it.
    await rejectionOf(client.query('BEGIN; SELECT 1/0'));
    expect(['unknown', 'failed']).toContain(adapter.txStatus?.(client));
    await wireIdle(client);
    expect(adapter.txStatus?.(client)).toBe('failed');
    await client.query('ROLLBACK');
    await client.query('BEGIN');
    await rejectionOf(client.query('SELECT 1/0'));
    expect(['unknown', 'failed']).toContain(adapter.txStatus?.(client));
    // A ROLLBACK issued in the window queues behind the pending exchange and ends the transaction.
    await adapter.exec(client, adapter.sql.rollback);
    expect(adapter.txStatus?.(client)).toBe('idle');
  });

  test('savepoint statements from the dialect: only the inner work is undone', async () => {
    const client = await connect();
    const sp = 'lp_sp_1';
    for (const s of adapter.sql.begin({})) await adapter.exec(client, s);
    await client.query('UPDATE pg_adapter_rows SET v = 10 WHERE id = 1');
    await adapter.exec(client, adapter.sql.savepoint(sp));
    await client.query('UPDATE pg_adapter_rows SET v = 20 WHERE id = 2');
    await rejectionOf(client.query('SELECT 1/0'));
    await wireIdle(client);
    expect(adapter.txStatus?.(client)).toBe('failed');
    await adapter.exec(client, adapter.sql.rollbackToSavepoint(sp));
    expect(adapter.txStatus?.(client)).toBe('in_tx');
    await adapter.exec(client, adapter.sql.releaseSavepoint(sp));
    await adapter.exec(client, adapter.sql.commit);
    expect(adapter.txStatus?.(client)).toBe('idle');
    const rows = await admin.query('SELECT id, v FROM pg_adapter_rows ORDER BY id');
    expect(rows.rows).toEqual([
      { id: 1, v: 10 },
      { id: 2, v: 0 },
    ]);
  });

  test('dialect strings', () => {
    const sql = adapter.sql;
    expect(sql.begin({})).toEqual(['BEGIN']);
    expect(sql.begin({ isolation: 'serializable', readOnly: true, deferrable: true })).toEqual([
      'BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE',
    ]);
    expect(sql.begin({ isolation: 'read committed', readOnly: false, deferrable: false })).toEqual([
      'BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE NOT DEFERRABLE',
    ]);
    expect(sql.begin({ isolation: 'repeatable read' })).toEqual(['BEGIN ISOLATION LEVEL REPEATABLE READ']);
    expect(sql.begin({ isolation: 'read uncommitted' })).toEqual(['BEGIN ISOLATION LEVEL READ UNCOMMITTED']);
    expect(sql.commit).toBe('COMMIT');
    expect(sql.rollback).toBe('ROLLBACK');
    expect(sql.savepoint('lp_sp_1')).toBe('SAVEPOINT lp_sp_1');
    expect(sql.releaseSavepoint('lp_sp_12')).toBe('RELEASE SAVEPOINT lp_sp_12');
    expect(sql.rollbackToSavepoint('lp_sp_3')).toBe('ROLLBACK TO SAVEPOINT lp_sp_3');
    for (const bad of ['', 'LP_SP_1', '1sp', 'sp; DROP TABLE x', 'sp-1', 'a b', 'x'.repeat(64)]) {
      expect(() => sql.savepoint(bad)).toThrow(ConfigError);
      expect(() => sql.releaseSavepoint(bad)).toThrow(ConfigError);
      expect(() => sql.rollbackToSavepoint(bad)).toThrow(ConfigError);
    }
    expect(() => sql.begin({ isolation: 'serializable; DROP TABLE x' as never })).toThrow(ConfigError);
    expect(() => sql.begin({ isolation: 'toString' as never })).toThrow(ConfigError);
    expect(() => sql.begin({ readOnly: 'yes' as never })).toThrow(ConfigError);
    expect(() => sql.begin({ deferrable: 1 as never })).toThrow(ConfigError);
  });

  test('every BEGIN the dialect can build is valid SQL with the requested characteristics', async () => {
    const client = await connect();
    const levels = ['read uncommitted', 'read committed', 'repeatable read', 'serializable'] as const;
    for (const isolation of levels) {
      for (const readOnly of [undefined, true, false]) {
        for (const deferrable of [undefined, true, false]) {
          const statements = adapter.sql.begin({ isolation, readOnly, deferrable });
          expect(statements).toHaveLength(1);
          for (const s of statements) await adapter.exec(client, s);
          const r = await client.query(
            `SELECT current_setting('transaction_isolation') AS iso,
                    current_setting('transaction_read_only') AS ro,
                    current_setting('transaction_deferrable') AS def`,
          );
          expect(r.rows[0]).toEqual({ iso: isolation, ro: readOnly === true ? 'on' : 'off', def: deferrable === true ? 'on' : 'off' });
          await adapter.exec(client, adapter.sql.rollback);
        }
      }
    }
  });
});

describe('fatal and retryable errors', () => {
  test('pg_terminate_backend of an IDLE client: events.onError called once (no crash), error is fatal', async () => {
    let reported!: (err: unknown) => void;
    const onErrorCalled = new Promise<unknown>((r) => (reported = r));
    const ev = { onError: jest.fn((err: unknown) => reported(err)) };
    const client = await connect(adapter, ev);
    const r = await admin.query('SELECT pg_terminate_backend($1) AS ok', [pidOf(client)]);
    expect(r.rows[0].ok).toBe(true);
    const err = await onErrorCalled;
    expect((err as { code?: string }).code).toBe('57P01');
    expect(adapter.isFatal(err)).toBe(true);
    expect(adapter.isRetryable(err)).toBe(false);
    const next = await rejectionOf(client.query('SELECT 1'));
    expect(adapter.isFatal(next)).toBe(true);
    expect(ev.onError).toHaveBeenCalledTimes(1); // the 'end' that follows is not reported again
  });

  test('pg_terminate_backend during a query: the query rejects with a fatal 57P01', async () => {
    const ev = events();
    const client = await connect(adapter, ev);
    const pid = pidOf(client);
    const running = rejectionOf(client.query('SELECT pg_sleep(10)'));
    await waitUntil('the sleep is running', async () => {
      const r = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1 AND state = 'active'`, [pid]);
      return r.rows[0].n === 1;
    });
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    const err = await running;
    expect((err as { code?: string }).code).toBe('57P01');
    expect(adapter.isFatal(err)).toBe(true);
  });

  test('a real serialization failure (two serializable transactions) is retryable, not fatal', async () => {
    const t1 = await connect();
    const t2 = await connect();
    await t1.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
    await t1.query('SELECT v FROM pg_adapter_rows WHERE id = 1'); // snapshot taken
    await t2.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
    await t2.query('UPDATE pg_adapter_rows SET v = v + 1 WHERE id = 1');
    await t2.query('COMMIT');
    const err = await rejectionOf(t1.query('UPDATE pg_adapter_rows SET v = v + 1 WHERE id = 1'));
    expect((err as { code?: string }).code).toBe('40001');
    expect(adapter.isRetryable(err)).toBe(true);
    expect(adapter.isFatal(err)).toBe(false);
    await wireIdle(t1);
    expect(adapter.txStatus?.(t1)).toBe('failed');
    await t1.query('ROLLBACK');
  });

  test('a real deadlock (40P01) is retryable, not fatal', async () => {
    const t1 = await connect();
    const t2 = await connect();
    for (const c of [t1, t2]) await c.query(`SET deadlock_timeout = '50ms'`);
    await t1.query('BEGIN');
    await t2.query('BEGIN');
    await t1.query('UPDATE pg_adapter_rows SET v = v + 1 WHERE id = 1');
    await t2.query('UPDATE pg_adapter_rows SET v = v + 1 WHERE id = 2');
    const results = await Promise.allSettled([
      t1.query('UPDATE pg_adapter_rows SET v = v + 1 WHERE id = 2'),
      t2.query('UPDATE pg_adapter_rows SET v = v + 1 WHERE id = 1'),
    ]);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected).toHaveLength(1);
    const err = rejected[0]?.reason as { code?: string };
    expect(err.code).toBe('40P01');
    expect(adapter.isRetryable(err)).toBe(true);
    expect(adapter.isFatal(err)).toBe(false);
    await t1.query('ROLLBACK');
    await t2.query('ROLLBACK');
  });

  test('classification by shape', () => {
    const withCode = (code: string, extra: object = {}): Error => Object.assign(new Error('x'), { code, ...extra });
    for (const code of ['08006', '08003', '08P01', '57P01', '57P02', '57P03', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED']) {
      expect(adapter.isFatal(withCode(code))).toBe(true);
    }
    for (const msg of [
      'Connection terminated unexpectedly',
      'Connection terminated',
      'Client has encountered a connection error and is not queryable',
      'Client was closed and is not queryable',
    ]) {
      expect(adapter.isFatal(new Error(msg))).toBe(true);
    }
    expect(adapter.isFatal(withCode('XX000', { severity: 'FATAL' }))).toBe(true);
    expect(adapter.isFatal(withCode('23505', { severity: 'ERROR' }))).toBe(false);
    expect(adapter.isFatal(withCode('40001'))).toBe(false);
    expect(adapter.isFatal(new Error('syntax error'))).toBe(false);
    expect(adapter.isFatal(null)).toBe(false);
    expect(adapter.isFatal('ECONNRESET')).toBe(false);
    expect(adapter.isRetryable(withCode('40001'))).toBe(true);
    expect(adapter.isRetryable(withCode('40P01'))).toBe(true);
    expect(adapter.isRetryable(withCode('40002'))).toBe(false);
    expect(adapter.isRetryable(undefined)).toBe(false);
  });
});

describe('cancel and reset', () => {
  test('cancel interrupts SELECT pg_sleep(30) within ~1 s with 57014; the connection stays usable', async () => {
    const client = await connect();
    const pid = pidOf(client);
    const running = rejectionOf(client.query('SELECT pg_sleep(30)'));
    await waitUntil('the sleep is running', async () => {
      const r = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1 AND state = 'active'`, [pid]);
      return r.rows[0].n === 1;
    });
    const started = Date.now();
    await adapter.cancel?.(client);
    const err = await running;
    expect(Date.now() - started).toBeLessThan(1500);
    expect((err as { code?: string }).code).toBe('57014');
    expect(adapter.isFatal(err)).toBe(false);
    expect(adapter.txStatus?.(client)).toBe('idle');
    await adapter.validate(client);
  });

  test('cancel is bounded in time and never throws (silent peer, refused port, never-connected client)', async () => {
    const hole = await blackhole();
    cleanups.push(() => hole.close());
    const a = pgAdapter({ host: '127.0.0.1', port: hole.port }, { cancelTimeoutMs: 200 });
    const fake = (port: number): Client =>
      ({ host: '127.0.0.1', port, processID: 12345, secretKey: -6789 }) as unknown as Client;
    const started = Date.now();
    await expect(a.cancel?.(fake(hole.port))).resolves.toBeUndefined();
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(150); // the silent peer never closed: the bound ended it
    expect(elapsed).toBeLessThan(1000);
    expect(await hole.allClosed(1000)).toBe(true);
    // The silent peer received exactly one well-formed CancelRequest.
    expect(hole.sockets).toHaveLength(1);
    const packet = hole.received.get(hole.sockets[0] as net.Socket) as Buffer;
    expect(packet).toHaveLength(16);
    expect([packet.readInt32BE(0), packet.readInt32BE(4), packet.readInt32BE(8), packet.readInt32BE(12)]).toEqual([16, 80877102, 12345, -6789]);

    const gone = await blackhole();
    const refusedPort = gone.port;
    await gone.close();
    await expect(a.cancel?.(fake(refusedPort))).resolves.toBeUndefined();
    await expect(a.cancel?.(new Client(PG_URL))).resolves.toBeUndefined(); // no backend key yet: no-op
  });

  test('reset runs DISCARD ALL: SET values and temp tables are gone, startup parameters stay', async () => {
    const a = pgAdapter(PG_URL, { statementTimeoutMs: 1500 });
    const client = await connect(a);
    await client.query(`SET statement_timeout = '12s'`);
    await client.query(`SET application_name = 'pg_adapter_reset'`);
    await client.query('CREATE TEMP TABLE pg_adapter_tmp (x int)');
    expect((await client.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('12s');
    await a.reset?.(client);
    expect((await client.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('1500ms');
    expect((await client.query('SHOW application_name')).rows[0].application_name).not.toBe('pg_adapter_reset');
    expect((await client.query(`SELECT to_regclass('pg_temp.pg_adapter_tmp') AS t`)).rows[0].t).toBeNull();
    expect(a.txStatus?.(client)).toBe('idle');
  });
});

describe('bad configuration fails at pgAdapter(), naming what is wrong', () => {
  test('a string that is not a URL, and a URL of another scheme', () => {
    expect(() => pgAdapter('not a url')).toThrow('config is not a postgres:// URL');
    expect(() => pgAdapter('mysql://root:secret@127.0.0.1:3306/app')).toThrow(
      'config must be a postgres:// URL, not mysql:// (a MySQL URL: use mysqlAdapter from leasepool/adapters/mysql2)',
    );
    expect(() => pgAdapter({ connectionString: 'https://db.example/app' })).toThrow('config.connectionString must be a postgres:// URL, not https://');
    try {
      pgAdapter('mysql://root:secret@127.0.0.1:3306/app');
    } catch (err) {
      expect((err as Error).message).not.toContain('secret');
    }
  });

  test('a bad server-side timeout says what it got', () => {
    expect(() => pgAdapter('postgres://app@127.0.0.1/app', { statementTimeoutMs: -5 })).toThrow(
      'statementTimeoutMs must be an integer between 0 and 2147483647 (got -5)',
    );
  });
});

test('an unknown adapter option close to a known one gets "did you mean"', () => {
  expect(() => pgAdapter('postgres://app@127.0.0.1/app', { statementTimeoutMS: 5 } as never)).toThrow(
    'statementTimeoutMS is not a pgAdapter option (did you mean statementTimeoutMs?)',
  );
});
