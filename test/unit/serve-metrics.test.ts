import * as http from 'node:http';
import { Counter, Registry } from 'prom-client';
import { ConfigError, createPool, serveMetrics, type MetricsServer } from '../../src';
import { fakeAdapter } from '../helpers/fake-adapter';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request on its own socket (no keep-alive agent left behind). */
function request(url: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const servers: MetricsServer[] = [];
async function start(...args: Parameters<typeof serveMetrics>): Promise<MetricsServer> {
  const server = await serveMetrics(...args);
  servers.push(server);
  return server;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

test('serves the registry at /metrics on 127.0.0.1 by default, with its content type', async () => {
  const registry = new Registry();
  const counter = new Counter({ name: 'serve_test_total', help: 'a test counter', registers: [registry] });
  counter.inc(3);
  const server = await start({ registry, port: 0 });
  expect(server.host).toBe('127.0.0.1');
  expect(server.port).toBeGreaterThan(0);
  expect(server.url).toBe(`http://127.0.0.1:${server.port}/metrics`);

  const reply = await request(server.url);
  expect(reply.status).toBe(200);
  expect(reply.headers['content-type']).toBe(registry.contentType);
  expect(reply.body).toContain('serve_test_total 3');

  // The value is read at scrape time.
  counter.inc();
  expect((await request(`${server.url}?x=1`)).body).toContain('serve_test_total 4');
});

test('binds only 127.0.0.1 unless host says otherwise', async () => {
  // On Linux all of 127.0.0.0/8 reaches the loopback interface: a socket bound to every
  // interface answers on 127.0.0.2, one bound to 127.0.0.1 does not.
  const registry = new Registry();
  const local = await start({ registry, port: 0 });
  await expect(request(`http://127.0.0.2:${local.port}/metrics`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  expect((await request(`http://127.0.0.1:${local.port}/metrics`)).status).toBe(200);

  const everywhere = await start({ registry, port: 0, host: '0.0.0.0' });
  expect(everywhere.url).toBe(`http://0.0.0.0:${everywhere.port}/metrics`);
  expect((await request(`http://127.0.0.2:${everywhere.port}/metrics`)).status).toBe(200);
});

test('exposes a pool\'s leasepool_ series', async () => {
  const registry = new Registry();
  const pool = createPool(fakeAdapter(), { name: 'served', max: 3, leakDetectionMs: 0, metrics: { registry } });
  try {
    await pool.withTx(async (conn) => {
      await conn.query('SELECT 1');
    });
    const server = await start({ registry, port: 0 });
    const body = (await request(server.url)).body;
    expect(body).toContain('leasepool_connections_max{pool="served"} 3');
    expect(body).toContain('leasepool_transactions_total{pool="served",outcome="commit"} 1');
  } finally {
    await pool.close({ timeoutMs: 1_000 });
  }
});

test('other paths are 404, other methods 405, HEAD has no body', async () => {
  const registry = new Registry();
  const server = await start({ registry, port: 0 });
  const base = `http://127.0.0.1:${server.port}`;
  expect((await request(`${base}/`)).status).toBe(404);
  expect((await request(`${base}/metricsx`)).status).toBe(404);
  const post = await request(server.url, 'POST');
  expect(post.status).toBe(405);
  expect(post.headers.allow).toBe('GET, HEAD');
  const head = await request(server.url, 'HEAD');
  expect(head.status).toBe(200);
  expect(head.body).toBe('');
});

test('needs only an object with metrics() and contentType (no prom-client required)', async () => {
  const registry = { contentType: 'text/plain; version=0.0.4; charset=utf-8', metrics: () => 'plain_metric 1\n' };
  const server = await start({ registry, port: 0 });
  const reply = await request(server.url);
  expect(reply.status).toBe(200);
  expect(reply.body).toBe('plain_metric 1\n');
  expect(reply.headers['content-type']).toBe(registry.contentType);
});

test('a failing registry gives 500 without echoing its error', async () => {
  const registry = {
    contentType: 'text/plain',
    metrics: async (): Promise<string> => {
      throw new Error('secret label value s3cr3t');
    },
  };
  const server = await start({ registry, port: 0 });
  const reply = await request(server.url);
  expect(reply.status).toBe(500);
  expect(reply.body).not.toContain('s3cr3t');
  // A synchronous throw too.
  const sync = await start({
    registry: {
      contentType: 'text/plain',
      metrics: (): string => {
        throw new Error('boom');
      },
    },
    port: 0,
  });
  expect((await request(sync.url)).status).toBe(500);
});

test('a taken port rejects with EADDRINUSE and a clear message', async () => {
  const registry = new Registry();
  const first = await start({ registry, port: 0 });
  const err: unknown = await serveMetrics({ registry, port: first.port }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(Error);
  expect((err as { code?: unknown }).code).toBe('EADDRINUSE');
  expect((err as Error).message).toBe(`serveMetrics: cannot listen on 127.0.0.1:${first.port}: address already in use`);
});

test('bad options reject with ConfigError naming each field', async () => {
  const registry = new Registry();
  const bad: unknown = await serveMetrics({ registry, port: -1, host: '' }).catch((e: unknown) => e);
  expect(bad).toBeInstanceOf(ConfigError);
  expect((bad as ConfigError).fields).toEqual(['port', 'host']);
  await expect(serveMetrics({ registry, port: 70_000 })).rejects.toBeInstanceOf(ConfigError);
  await expect(serveMetrics({ registry, port: 1.5 })).rejects.toBeInstanceOf(ConfigError);
  const noRegistry: unknown = await serveMetrics({ registry: {} as never, port: 0 }).catch((e: unknown) => e);
  expect((noRegistry as ConfigError).fields).toEqual(['registry']);
});

test('close() stops listening, drops open sockets and is idempotent', async () => {
  const registry = new Registry();
  const server = await serveMetrics({ registry, port: 0 });
  // A keep-alive connection left open by a client must not hold close() up.
  const agent = new http.Agent({ keepAlive: true });
  await new Promise<void>((resolve, reject) => {
    http.get(server.url, { agent }, (res) => {
      res.resume();
      res.on('end', resolve);
    }).on('error', reject);
  });
  await server.close();
  await server.close();
  agent.destroy();
  await expect(request(server.url)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
});
