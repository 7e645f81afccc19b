/**
 * The lease inspector on the fake adapter: the snapshot's schema and what it reads from the lease
 * records, statement tracking only while attached, the report ring buffer, the HTTP handler's
 * routes, the token (401 with an empty body), reclaim, loopback by default, and no secret in the
 * page or the JSON (a password in the target or in a revoke reason, a statement's parameters).
 */
import * as http from 'node:http';
import {
  attachInspector,
  ConfigError,
  createPool,
  inspectLeases,
  inspectorHandler,
  INSPECTOR_SCHEMA_VERSION,
  LeaseRevokedError,
  serveInspector,
  type InspectorServer,
  type InspectorSnapshot,
  type LeaseSnapshot,
  type Pool,
} from '../../src';
import { reclaimLease } from '../../src/release';
import { FakeConnection, fakeAdapter } from '../helpers/fake-adapter';
import { closeAll, rejection, setup, waitFor } from '../helpers/unit';

const TOKEN = 'unit-test-token-0123456789';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(url: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const servers: InspectorServer[] = [];
async function start(...args: Parameters<typeof serveInspector>): Promise<InspectorServer> {
  const server = await serveInspector(...args);
  servers.push(server);
  return server;
}
const detachers: Array<() => void> = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const off of detachers.splice(0)) off();
  await closeAll();
});

/** A statement method taking parameters, as the drivers' (the fake's ignores them). */
function queryWith(conn: FakeConnection, sql: string, params: unknown[]): Promise<unknown> {
  return (conn.query as unknown as (sql: string, params: unknown[]) => Promise<unknown>).call(conn, sql, params);
}

function leaseOf(snapshot: InspectorSnapshot, id: number): LeaseSnapshot | undefined {
  return snapshot.pools.flatMap((p) => p.leases).find((l) => l.id === id);
}

test('the snapshot: a lease in a savepoint running a statement, with its stack, deadline, leak flag; waiters', async () => {
  const { pool } = setup({ name: 'inspected', max: 1, leakDetectionMs: 40, leakStacksPerSecond: Infinity });
  detachers.push(attachInspector(pool));
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let leaseId = 0;
  const body = pool.withTx(
    async (_conn, tx) => {
      await pool.withTx(async (inner) => {
        leaseId = tx.lease.id;
        const running = inner.query('SLEEP 150');
        await held;
        await running;
      });
    },
    {},
  );
  // Nested withTx joins the ambient transaction: keep that scope going while we look.
  await waitFor('the statement runs', () => {
    const l = leaseOf(inspectLeases(pool), leaseId);
    return l !== undefined && l.state === 'running';
  });
  const waiting = pool.withLease(async () => undefined, { acquireTimeoutMs: 5_000 });
  await waitFor('the waiter queues', () => pool.stats().pending === 1);
  await waitFor('the lease is reported leaked', () => leaseOf(inspectLeases(pool), leaseId)?.leaked === true);

  const snap = inspectLeases(pool);
  expect(snap.schemaVersion).toBe(INSPECTOR_SCHEMA_VERSION);
  expect(Number.isNaN(Date.parse(snap.generatedAt))).toBe(false);
  expect(snap.reclaimEnabled).toBe(false);
  expect(snap.pools).toHaveLength(1);
  const p = snap.pools[0]!;
  expect(p).toMatchObject({ name: 'inspected', driver: 'fake', target: 'memory:0/fake', leakDetectionMs: 40, statementTracking: true });
  expect(p.stats).toMatchObject({ size: 1, active: 1, idle: 0, pending: 1, max: 1, closed: false });
  expect(p.waiters).toHaveLength(1);
  expect(p.waiters[0]!.waitingMs).toBeGreaterThanOrEqual(0);
  const l = leaseOf(snap, leaseId)!;
  expect(l).toMatchObject({ id: leaseId, state: 'running', transaction: 'open', txDepth: 2, savepointDepth: 1, inflight: 1, leaked: true, backendId: null, deadlineLeftMs: null });
  expect(l.statement).toEqual({ sql: 'SLEEP 150', runningMs: expect.any(Number) });
  expect(l.ageMs).toBeGreaterThanOrEqual(40);
  expect(l.stack).toContain('inspector.test.ts');
  expect(Object.keys(l).sort()).toEqual(
    ['ageMs', 'backendId', 'deadlineLeftMs', 'id', 'inflight', 'leaked', 'savepointDepth', 'stack', 'state', 'statement', 'transaction', 'txDepth'].sort(),
  );
  // The leak report is in the ring buffer, newest first.
  expect(p.recent[0]).toMatchObject({ kind: 'leak', leaseId, recovery: null, reason: null, inTransaction: true });
  expect(p.recent[0]!.stack).toContain('inspector.test.ts');

  release();
  await body;
  await waiting;
  const after = inspectLeases(pool).pools[0]!;
  expect(after.leases).toEqual([]);
  expect(after.waiters).toEqual([]);
  expect(after.recent.map((r) => r.kind)).toEqual(['leak_returned', 'leak']);
});

test('states: idle in a lease, in a transaction, failed transaction; deadline left; the backend id hook', async () => {
  const adapter = { ...fakeAdapter(), backendId: (conn: FakeConnection) => 1000 + conn.id };
  const pool = createPool(adapter, { leakDetectionMs: 0, metrics: false, logger: { warn() {}, error() {} } });
  try {
    const lease = await pool.acquire();
    let snap = leaseOf(inspectLeases(pool), lease.id)!;
    expect(snap).toMatchObject({ state: 'idle', transaction: 'none', txDepth: 0, savepointDepth: 0, statement: null, stack: null, deadlineLeftMs: null });
    expect(snap.backendId).toBe(1000 + (lease.conn as FakeConnection).id);
    await lease.conn.query('BEGIN');
    expect(leaseOf(inspectLeases(pool), lease.id)).toMatchObject({ state: 'in_transaction', transaction: 'open', txDepth: 0 });
    await lease.conn.query('FAIL').catch(() => undefined);
    expect(leaseOf(inspectLeases(pool), lease.id)).toMatchObject({ state: 'failed_transaction', transaction: 'failed' });
    await lease.release();

    await pool.withLease(
      async (_conn, held) => {
        snap = leaseOf(inspectLeases(pool), held.id)!;
        expect(snap.deadlineLeftMs).toBeGreaterThan(9_000);
        expect(snap.deadlineLeftMs).toBeLessThanOrEqual(10_000);
      },
      { timeoutMs: 10_000 },
    );
  } finally {
    await pool.close({ timeoutMs: 50 });
  }
});

test('statement text is recorded only while an inspector is attached, and never the parameters', async () => {
  const { pool } = setup();
  const lease = await pool.acquire();
  const first = queryWith(lease.conn, 'SLEEP 30', ['s3cret-param']);
  expect(leaseOf(inspectLeases(pool), lease.id)).toMatchObject({ state: 'running', inflight: 1, statement: null });
  expect(inspectLeases(pool).pools[0]!.statementTracking).toBe(false);
  expect(lease.record.sqlText).toBeUndefined();
  await first;

  const detach = attachInspector(pool);
  const second = queryWith(lease.conn, 'SLEEP 30', ['s3cret-param']);
  const seen = inspectLeases(pool);
  expect(leaseOf(seen, lease.id)?.statement?.sql).toBe('SLEEP 30');
  expect(JSON.stringify(seen)).not.toContain('s3cret-param');
  await second;
  expect(leaseOf(inspectLeases(pool), lease.id)?.statement).toBeNull();

  // A config object: its text, not its values.
  // The fake takes only a string: give this connection a query that takes pg's { text, values } too.
  (lease.conn as unknown as { query: unknown }).query = function query(this: FakeConnection, config: string | { text: string }): Promise<unknown> {
    return FakeConnection.prototype.query.call(this, typeof config === 'string' ? config : config.text);
  };
  const third = lease.conn.query({ text: 'SLEEP 20', values: ['s3cret-param'] } as unknown as string);
  expect(leaseOf(inspectLeases(pool), lease.id)?.statement?.sql).toBe('SLEEP 20');
  await third;

  detach();
  expect(pool.guardConfig.trackStatements).toBe(false);
  const fourth = lease.conn.query('SLEEP 10');
  expect(leaseOf(inspectLeases(pool), lease.id)?.statement).toBeNull();
  await fourth;
  await lease.release();
});

test('attachments are counted; the ring buffer keeps the last N reports, reclaims with their kind and a redacted reason', async () => {
  const { pool } = setup({ leaseTimeoutMs: 20 });
  const offA = attachInspector(pool, 2);
  const offB = attachInspector(pool, 99);
  for (let i = 0; i < 3; i++) {
    const lease = await pool.acquire();
    await waitFor('the deadline reclaims it', () => lease.state === 'revoked');
  }
  const recent = inspectLeases(pool).pools[0]!.recent;
  expect(recent).toHaveLength(2);
  // leaseTimeoutMs before any leak report: reclaims of kind deadline, without a stack.
  expect(recent.every((r) => r.kind === 'reclaim' && r.recovery === 'deadline' && typeof r.reason === 'string' && r.stack === null)).toBe(true);
  offA();
  expect(pool.guardConfig.trackStatements).toBe(true);
  offB();
  offB();
  expect(pool.guardConfig.trackStatements).toBe(false);
  expect(pool.listenerCount('reclaim')).toBe(0);
  expect(pool.listenerCount('deadline')).toBe(0);
  expect(inspectLeases(pool).pools[0]!.recent).toEqual([]);
});

test('serveInspector binds 127.0.0.1 by default and serves the page and the JSON', async () => {
  const { pool } = setup({ name: 'web' });
  const server = await start([pool], { port: 0 });
  expect(server.host).toBe('127.0.0.1');
  expect(server.url).toBe(`http://127.0.0.1:${server.port}/debug/leases`);
  const lease = await pool.acquire();

  const page = await request(server.url);
  expect(page.status).toBe(200);
  expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
  const csp = String(page.headers['content-security-policy']);
  const nonce = /'nonce-([^']+)'/.exec(csp)?.[1];
  expect(nonce).toBeDefined();
  expect(page.body).toContain(`<script nonce="${nonce}">`);
  // Self-contained: no external script, style, image or font.
  expect(page.body).not.toMatch(/\b(?:src|href)\s*=/i);
  expect(page.body).not.toMatch(/https?:\/\//);

  const json = await request(server.jsonUrl);
  expect(json.status).toBe(200);
  expect(json.headers['content-type']).toBe('application/json; charset=utf-8');
  expect(json.headers['cache-control']).toBe('no-store');
  const snap = JSON.parse(json.body) as InspectorSnapshot;
  expect(snap.pools[0]!.name).toBe('web');
  expect(snap.pools[0]!.leases.map((l) => l.id)).toEqual([lease.id]);
  expect(snap.reclaimEnabled).toBe(false);

  expect((await request(server.url.replace('/debug/leases', '/other'))).status).toBe(404);
  expect((await request(server.jsonUrl, { method: 'DELETE' })).status).toBe(405);
  // Reclaim is off by default (and without a token it cannot be on).
  expect((await request(`${server.url}/web/${lease.id}/reclaim`, { method: 'POST' })).status).toBe(403);
  expect(lease.state).toBe('active');
  await lease.release();
  await server.close();
  expect(pool.guardConfig.trackStatements).toBe(false);
});

test('a non-loopback host without a token, a short token, reclaim without a token: ConfigError', async () => {
  const { pool } = setup();
  for (const options of [{ host: '0.0.0.0' }, { host: '::' }, { host: '192.168.1.10' }, { host: 'db.example' }, { token: 'short' }, { allowReclaim: true }, { port: -1 }, { pollIntervalMs: 1 }]) {
    const err = await rejection(serveInspector([pool], { port: 0, ...options }));
    expect(err).toBeInstanceOf(ConfigError);
  }
  expect(() => inspectorHandler([pool], { allowReclaim: true })).toThrow(ConfigError);
  expect(pool.guardConfig.trackStatements).toBe(false); // nothing was attached
  const lan = await start([pool], { port: 0, host: '0.0.0.0', token: TOKEN });
  expect((await request(`http://127.0.0.1:${lan.port}/debug/leases.json`)).status).toBe(401);
  for (const loopback of ['127.0.0.1', 'localhost', '::1']) {
    const server = await start([pool], { port: 0, host: loopback }).catch((err: NodeJS.ErrnoException) => {
      if (loopback === '::1' && err.code === 'EADDRNOTAVAIL') return undefined; // no IPv6 here
      throw err;
    });
    if (server !== undefined) expect((await request(server.jsonUrl)).status).toBe(200);
  }
});

test('with a token: missing or wrong → 401 with an empty body; Bearer header or ?token= on GET works', async () => {
  const { pool } = setup({ name: 'secure' });
  const server = await start([pool], { port: 0, token: TOKEN, allowReclaim: true });
  const denied = [
    await request(server.url),
    await request(server.jsonUrl),
    await request(server.jsonUrl, { headers: { authorization: 'Bearer wrong-token-0123456789xx' } }),
    await request(server.jsonUrl, { headers: { authorization: `Bearer ${TOKEN}x` } }),
    await request(server.jsonUrl, { headers: { authorization: `Basic ${TOKEN}` } }),
    await request(`${server.jsonUrl}?token=${TOKEN.slice(0, -1)}`),
    await request(`${server.url}/secure/1/reclaim`, { method: 'POST' }),
    // A POST does not take the token from the URL (a link or a form cannot reclaim).
    await request(`${server.url}/secure/1/reclaim?token=${TOKEN}`, { method: 'POST' }),
  ];
  for (const reply of denied) {
    expect(reply.status).toBe(401);
    expect(reply.body).toBe('');
    expect(reply.headers['content-type']).toBeUndefined();
  }
  expect((await request(server.jsonUrl, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  expect((await request(`${server.url}?token=${encodeURIComponent(TOKEN)}`)).status).toBe(200);
  const snap = JSON.parse((await request(`${server.jsonUrl}?token=${TOKEN}`)).body) as InspectorSnapshot;
  expect(snap.reclaimEnabled).toBe(true);
});

test('reclaim with the token takes the lease back through the reclaim path', async () => {
  const { pool, db } = setup({ name: 'reclaim-me' });
  const server = await start([pool], { port: 0, token: TOKEN, allowReclaim: true });
  const auth = { authorization: `Bearer ${TOKEN}` };
  const lease = await pool.acquire();
  await lease.conn.query('BEGIN');
  const running = lease.conn.query('SLEEP 5000');
  const url = `${server.url}/${encodeURIComponent('reclaim-me')}/${lease.id}/reclaim`;
  expect((await request(url, { headers: auth })).status).toBe(405);
  const reply = await request(url, { method: 'POST', headers: auth });
  expect(reply.status).toBe(200);
  expect(JSON.parse(reply.body)).toEqual({ reclaimed: true, id: lease.id });
  expect(lease.state).toBe('revoked');
  expect(() => lease.conn).toThrow(LeaseRevokedError);
  expect(db.cancelled).toHaveLength(1);
  await expect(running).rejects.toThrow();
  const recent = JSON.parse((await request(server.jsonUrl, { headers: auth })).body) as InspectorSnapshot;
  expect(recent.pools[0]!.leases).toEqual([]);
  expect(recent.pools[0]!.recent[0]).toMatchObject({ kind: 'reclaim', leaseId: lease.id, recovery: 'leak_reclaimed', reason: expect.stringContaining('lease inspector') });
  // Gone, or never there: 404.
  expect((await request(url, { method: 'POST', headers: auth })).status).toBe(404);
  expect((await request(`${server.url}/nope/${lease.id}/reclaim`, { method: 'POST', headers: auth })).status).toBe(404);
});

test('no secret on the page or in the JSON: a password in the target or a revoke reason, statement parameters', async () => {
  const adapter = { ...fakeAdapter(), target: 'postgres://app:hunter2-secret@db:5432/shop' };
  const pool = createPool(adapter, { name: 'secrets', leakDetectionMs: 20, leakStacksPerSecond: Infinity, metrics: false, logger: { warn() {}, error() {} } });
  try {
    const server = await start([pool], { port: 0 });
    const lease = await pool.acquire();
    const running = queryWith(lease.conn, 'SLEEP 100', ['hunter2-param', { password: 'hunter2-nested' }]);
    await waitFor('leak reported', () => lease.record.leakReported);
    const other = await pool.acquire();
    // A reclaim whose reason names the connection string.
    await reclaimLease(other.record, 'leak_reclaimed', new Error('lost postgres://app:hunter2-secret@db:5432/shop'));
    const json = await request(server.jsonUrl);
    const page = await request(server.url);
    for (const text of [json.body, page.body]) expect(text).not.toContain('hunter2');
    const snap = JSON.parse(json.body) as InspectorSnapshot;
    expect(snap.pools[0]!.target).toBe('postgres://app:***@db:5432/shop');
    expect(leaseOf(snap, lease.id)?.statement?.sql).toBe('SLEEP 100');
    expect(snap.pools[0]!.recent.find((r) => r.kind === 'reclaim')?.reason).toBe('lost postgres://app:***@db:5432/shop');
    await running;
    await lease.release();
  } finally {
    await pool.close({ timeoutMs: 50 });
  }
});

test('without a token: only loopback peers naming a loopback host (no DNS rebinding, no remote peer)', async () => {
  const { pool } = setup({ name: 'local' });
  const server = await start([pool], { port: 0 });
  expect((await request(server.jsonUrl, { headers: { host: `localhost:${server.port}` } })).status).toBe(200);
  expect((await request(server.jsonUrl, { headers: { host: `[::1]:${server.port}` } })).status).toBe(200);
  const rebound = await request(server.jsonUrl, { headers: { host: `evil.example:${server.port}` } });
  expect(rebound.status).toBe(403);
  expect(rebound.body).not.toContain('local');
  // A peer on another machine (the handler mounted on a public interface without a token).
  const handler = inspectorHandler(pool);
  try {
    const replies: number[] = [];
    const res = { writeHead: (status: number) => (replies.push(status), { end: () => undefined }), end: () => undefined };
    const req = { url: '/debug/leases.json', method: 'GET', headers: { host: 'localhost' }, socket: { remoteAddress: '10.1.2.3' } };
    handler(req as unknown as http.IncomingMessage, res as unknown as http.ServerResponse);
    expect(replies).toEqual([403]);
  } finally {
    handler.close();
  }
});

test('inspectorHandler mounts in an existing server: a prefix is fine, other paths go to next()', async () => {
  const { pool } = setup({ name: 'mounted' });
  const handler = inspectorHandler(pool);
  const passed: string[] = [];
  const server = http.createServer((req, res) =>
    handler(req, res, () => {
      passed.push(req.url ?? '');
      res.writeHead(200).end('app');
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as { port: number };
    const json = await request(`http://127.0.0.1:${port}/admin/debug/leases.json`);
    expect(json.status).toBe(200);
    expect((JSON.parse(json.body) as InspectorSnapshot).pools[0]!.name).toBe('mounted');
    expect((await request(`http://127.0.0.1:${port}/api/users`)).body).toBe('app');
    expect(passed).toEqual(['/api/users']);
    expect(pool.guardConfig.trackStatements).toBe(true);
  } finally {
    handler.close();
    handler.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  expect(pool.guardConfig.trackStatements).toBe(false);
});

test('a pool of any connection type can be inspected (types)', () => {
  const pools: Pool<FakeConnection>[] = [setup().pool];
  expect(inspectLeases(pools).pools).toHaveLength(1);
});
