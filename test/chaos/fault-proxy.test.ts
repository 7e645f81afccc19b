/**
 * The fault-injecting proxy itself, against a loopback echo server (no database): each mode does
 * what the chaos scenarios rely on, and the counters count it.
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { FaultProxy } from '../helpers/fault-proxy';

/** An upstream that echoes every chunk back and remembers what it received. */
interface Echo {
  readonly server: net.Server;
  readonly port: number;
  readonly received: Buffer[];
  readonly sockets: Set<net.Socket>;
}

async function startEcho(): Promise<Echo> {
  const received: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      socket.write(chunk);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port, received, sockets };
}

/** A client socket that collects what it reads and notes when it closes. */
interface Client {
  readonly socket: net.Socket;
  readonly data: () => string;
  readonly closed: Promise<void>;
  isClosed(): boolean;
}

async function connectClient(port: number): Promise<Client> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  let closed = false;
  socket.on('error', () => undefined);
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closedPromise = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true;
      resolve();
    }),
  );
  // A reset on accept may close the socket before 'connect' is reported.
  await Promise.race([new Promise((resolve) => socket.once('connect', resolve)), closedPromise]);
  return { socket, data: () => Buffer.concat(chunks).toString(), closed: closedPromise, isClosed: () => closed };
}

/** Poll until `predicate` holds (bounded). */
async function until(what: string, predicate: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let echo: Echo;
let proxy: FaultProxy;
const clients: Client[] = [];

async function client(): Promise<Client> {
  const c = await connectClient(proxy.port);
  clients.push(c);
  return c;
}

beforeEach(async () => {
  echo = await startEcho();
  proxy = await FaultProxy.start({ host: '127.0.0.1', port: echo.port });
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.destroy();
  await proxy.close();
  for (const s of echo.sockets) s.destroy();
  await new Promise<void>((resolve) => echo.server.close(() => resolve()));
});

test('pass-through forwards both ways and counts bytes and pairs', async () => {
  const c = await client();
  c.socket.write('hello');
  await until('the echo comes back', () => c.data() === 'hello');
  expect(proxy.counters.accepted).toBe(1);
  expect(proxy.counters.bytesUp).toBe(5);
  expect(proxy.counters.bytesDown).toBe(5);
  expect(proxy.openPairs).toBe(1);
  c.socket.end();
  await c.closed;
  await until('the pair is gone', () => proxy.openPairs === 0);
});

test("'drop' destroys open pairs and resets new clients; 'pass' accepts again", async () => {
  const a = await client();
  a.socket.write('x');
  await until('echo', () => a.data() === 'x');
  proxy.setMode('drop');
  await a.closed;
  expect(proxy.openPairs).toBe(0);

  const b = await client();
  await b.closed;
  expect(b.data()).toBe('');
  expect(proxy.counters.dropped).toBe(2);

  proxy.setMode('pass');
  const c = await client();
  c.socket.write('back');
  await until('echo after drop ends', () => c.data() === 'back');
});

test("'blackhole' holds bytes both ways (new clients too) and delivers them in order when healed", async () => {
  const a = await client();
  a.socket.write('1');
  await until('echo', () => a.data() === '1');
  proxy.setMode('blackhole');
  a.socket.write('2');
  a.socket.write('3');
  const b = await client(); // accepted, not connected upstream
  b.socket.write('new');
  await pause(150);
  expect(a.data()).toBe('1');
  expect(b.data()).toBe('');
  expect(echo.received.map(String).join('')).toBe('1');
  expect(a.isClosed() || b.isClosed()).toBe(false);

  proxy.setMode('pass');
  await until('held bytes delivered', () => a.data() === '123' && b.data() === 'new');
});

test('a reply held by the blackhole is delivered after healing, not lost', async () => {
  const a = await client();
  a.socket.write('ping');
  // Blackhole right after the request left: the reply (if it comes back in the window) is held.
  await until('request forwarded', () => proxy.counters.bytesUp === 4);
  proxy.setMode('blackhole');
  await pause(50);
  proxy.setMode('pass');
  await until('reply delivered', () => a.data() === 'ping');
});

test('latency delays every chunk in both directions and keeps the order', async () => {
  proxy.setLatency(300);
  const c = await client();
  const started = performance.now();
  for (const part of ['a', 'b', 'c', 'd']) c.socket.write(part);
  await until('all echoed', () => c.data().length === 4);
  const elapsed = performance.now() - started;
  expect(c.data()).toBe('abcd');
  // Up and down: at least two delays (timers may fire a little early; allow 10 ms).
  expect(elapsed).toBeGreaterThanOrEqual(2 * 300 - 10);
  proxy.setLatency(0);
  const t1 = performance.now();
  c.socket.write('e');
  await until('echo without latency', () => c.data() === 'abcde');
  // Without latency a loopback echo takes a few ms; 300 ms is one delay of the slow run, not two.
  expect(performance.now() - t1).toBeLessThan(300);
  expect(() => proxy.setLatency(-1)).toThrow(RangeError);
});

test('cutNext(match) forwards the matching chunk, then cuts that pair before the reply', async () => {
  const a = await client();
  const b = await client();
  a.socket.write('hello-a');
  b.socket.write('hello-b');
  await until('handshakes echoed', () => a.data() === 'hello-a' && b.data() === 'hello-b');
  // Hold replies so the cut surely lands between request and reply.
  const cut = proxy.cutNext((chunk) => chunk.toString().includes('COMMIT'));
  b.socket.write('SELECT');
  await until('b select echoed', () => b.data() === 'hello-bSELECT');
  expect(proxy.counters.cut).toBe(0);
  proxy.setLatency(50);
  a.socket.write('COMMIT');
  const pair = await cut;
  await a.closed;
  expect(pair.client).toBeDefined();
  expect(proxy.counters.cut).toBe(1);
  // The server got the statement; the client never got the reply.
  await until('server saw COMMIT', () => echo.received.map(String).includes('COMMIT'));
  expect(a.data()).toBe('hello-a');
  // Other pairs are untouched.
  expect(b.isClosed()).toBe(false);
  b.socket.write('!');
  await until('b still works', () => b.data() === 'hello-bSELECT!');
});

test('cut(id) and cutAll destroy chosen pairs now; disarm drops pending cutNext', async () => {
  const a = await client();
  const b = await client();
  const c = await client();
  for (const s of [a, b, c]) s.socket.write('.');
  await until('all three paired', () => proxy.openPairs === 3 && [a, b, c].every((s) => s.data() === '.'));
  const [first] = proxy.pairIds();
  expect(proxy.cut(first as number)).toBe(true);
  expect(proxy.cut(first as number)).toBe(false);
  await a.closed;
  expect(proxy.cutAll()).toBe(2);
  await Promise.all([b.closed, c.closed]);
  expect(proxy.counters.cut).toBe(3);
  void proxy.cutNext();
  expect(proxy.disarm()).toBe(1);
});

test('an unreachable upstream closes the client and counts the failure', async () => {
  const dead = await startEcho();
  const deadPort = dead.port;
  await new Promise<void>((resolve) => dead.server.close(() => resolve()));
  const p = await FaultProxy.start({ host: '127.0.0.1', port: deadPort });
  try {
    const c = await connectClient(p.port);
    await c.closed;
    expect(p.counters.upstreamErrors).toBe(1);
    expect(p.openPairs).toBe(0);
  } finally {
    await p.close();
  }
});
