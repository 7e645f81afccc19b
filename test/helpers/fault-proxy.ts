/**
 * A fault-injecting TCP proxy (Node `net`, loopback only) to put between a pool and a real server.
 *
 *   const proxy = await FaultProxy.start({ host: '127.0.0.1', port: 5432 });
 *   pgAdapter(`postgres://postgres@127.0.0.1:${proxy.port}/test`)
 *
 * Modes (switch at any time with `setMode`):
 * - `'pass'`       forward both ways (after `latencyMs`, if set);
 * - `'drop'`       destroy every open pair now and every new client socket on accept (a server that
 *                  is down, or a firewall sending resets);
 * - `'blackhole'`  accept, but forward nothing: bytes in both directions are held back, as in a
 *                  network partition (TCP retransmits), and new clients are not connected upstream
 *                  until the mode goes back to `'pass'`, when everything held is delivered in order.
 * Latency: `setLatency(ms)` delays every chunk by `ms` in both directions, keeping the order.
 * Cuts: `cutNext(match?)` destroys the pair whose client sends the next chunk (matching `match`, e.g. a
 * statement's text) right after forwarding it: the server runs the statement, the client never hears.
 * `cut(id)` / `cutAll()` destroy chosen pairs at once.
 * Counters: accepted, dropped, cut, bytes each way, open pairs.
 */
import * as net from 'node:net';

export type ProxyMode = 'pass' | 'drop' | 'blackhole';

export interface FaultProxyCounters {
  /** Client sockets accepted. */
  accepted: number;
  /** Client sockets destroyed on accept or by `'drop'`. */
  dropped: number;
  /** Pairs destroyed by `cut`, `cutAll` or an armed `cutNext`. */
  cut: number;
  /** Bytes forwarded client → server and server → client. */
  bytesUp: number;
  bytesDown: number;
  /** Upstream connects that failed (server down). */
  upstreamErrors: number;
}

/** One client connection and its upstream socket. */
export interface ProxyPair {
  readonly id: number;
  readonly client: net.Socket;
  upstream: net.Socket | undefined;
  /** Chunks held while the proxy is blackholed (or before the upstream socket is connected). */
  readonly heldUp: Buffer[];
  readonly heldDown: Buffer[];
  /** Client → server chunks seen (the first ones are the protocol handshake). */
  chunksUp: number;
  closed: boolean;
}

interface ArmedCut {
  readonly match: ((chunk: Buffer, pair: ProxyPair) => boolean) | undefined;
  readonly resolve: (pair: ProxyPair) => void;
}

export interface FaultProxyOptions {
  /** Server to forward to. */
  readonly host: string;
  readonly port: number;
  /** Port to listen on (default: a free one). Always 127.0.0.1. */
  readonly listenPort?: number;
}

export class FaultProxy {
  readonly counters: FaultProxyCounters = { accepted: 0, dropped: 0, cut: 0, bytesUp: 0, bytesDown: 0, upstreamErrors: 0 };
  readonly #server: net.Server;
  readonly #target: { host: string; port: number };
  readonly #pairs = new Map<number, ProxyPair>();
  #mode: ProxyMode = 'pass';
  #latencyMs = 0;
  #nextId = 1;
  #armed: ArmedCut[] = [];
  #port = 0;
  /** Time each direction of each pair may next deliver (keeps chunk order under latency). */
  readonly #nextDue = new WeakMap<net.Socket, number>();
  readonly #timers = new Set<NodeJS.Timeout>();

  private constructor(target: { host: string; port: number }) {
    this.#target = target;
    this.#server = net.createServer({ pauseOnConnect: false, noDelay: true }, (socket) => this.#onClient(socket));
  }

  /** Start listening on 127.0.0.1 (a free port unless `listenPort` is given). */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy({ host: options.host, port: options.port });
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(options.listenPort ?? 0, '127.0.0.1', () => {
        proxy.#server.off('error', reject);
        resolve();
      });
    });
    proxy.#port = (proxy.#server.address() as net.AddressInfo).port;
    return proxy;
  }

  /** Port the proxy listens on (127.0.0.1). */
  get port(): number {
    return this.#port;
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  get latencyMs(): number {
    return this.#latencyMs;
  }

  /** Pairs open now. */
  get openPairs(): number {
    return this.#pairs.size;
  }

  /** Ids of the open pairs, oldest first. */
  pairIds(): number[] {
    return [...this.#pairs.keys()];
  }

  /** Switch mode. `'drop'` destroys every open pair; leaving `'blackhole'` delivers what was held. */
  setMode(mode: ProxyMode): void {
    this.#mode = mode;
    if (mode === 'drop') {
      for (const pair of [...this.#pairs.values()]) {
        this.counters.dropped++;
        this.#destroy(pair);
      }
    } else if (mode === 'pass') {
      for (const pair of this.#pairs.values()) this.#flush(pair);
    }
  }

  /** Delay every chunk by `ms` (both directions, order kept). 0 turns latency off. */
  setLatency(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`latency must be >= 0 ms (got ${ms})`);
    this.#latencyMs = ms;
  }

  /**
   * Destroy the pair whose client sends the next chunk for which `match` holds (default: any chunk
   * after the handshake), right after forwarding that chunk. Resolves with the pair that was cut.
   */
  cutNext(match?: (chunk: Buffer, pair: ProxyPair) => boolean): Promise<ProxyPair> {
    return new Promise<ProxyPair>((resolve) => this.#armed.push({ match, resolve }));
  }

  /** Disarm pending `cutNext` calls (their promises never settle). Returns how many were pending. */
  disarm(): number {
    const n = this.#armed.length;
    this.#armed = [];
    return n;
  }

  /** Destroy one pair now. Returns false if it is not open. */
  cut(id: number): boolean {
    const pair = this.#pairs.get(id);
    if (pair === undefined) return false;
    this.counters.cut++;
    this.#destroy(pair);
    return true;
  }

  /** Destroy every open pair now (the mode does not change). */
  cutAll(): number {
    const pairs = [...this.#pairs.values()];
    for (const pair of pairs) {
      this.counters.cut++;
      this.#destroy(pair);
    }
    return pairs.length;
  }

  /** Stop listening and destroy every pair. */
  async close(): Promise<void> {
    this.#armed = [];
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const pair of [...this.#pairs.values()]) this.#destroy(pair);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // ------------------------------------------------------------------------------------------

  #onClient(client: net.Socket): void {
    this.counters.accepted++;
    client.on('error', () => undefined);
    if (this.#mode === 'drop') {
      this.counters.dropped++;
      client.resetAndDestroy();
      return;
    }
    client.setNoDelay(true);
    const pair: ProxyPair = { id: this.#nextId++, client, upstream: undefined, heldUp: [], heldDown: [], chunksUp: 0, closed: false };
    this.#pairs.set(pair.id, pair);
    client.on('data', (chunk: Buffer) => this.#fromClient(pair, chunk));
    client.on('close', () => this.#destroy(pair));
    if (this.#mode === 'pass') this.#connectUpstream(pair);
  }

  #connectUpstream(pair: ProxyPair): void {
    if (pair.closed || pair.upstream !== undefined) return;
    const upstream = net.connect({ host: this.#target.host, port: this.#target.port });
    pair.upstream = upstream;
    upstream.setNoDelay(true);
    let connected = false;
    upstream.on('error', () => {
      if (!connected) this.counters.upstreamErrors++;
    });
    upstream.on('connect', () => {
      connected = true;
      this.#flush(pair);
    });
    upstream.on('data', (chunk: Buffer) => this.#fromServer(pair, chunk));
    upstream.on('close', () => this.#destroy(pair));
  }

  #fromClient(pair: ProxyPair, chunk: Buffer): void {
    pair.chunksUp++;
    if (this.#mode === 'blackhole' || pair.upstream === undefined || pair.upstream.connecting || pair.heldUp.length > 0) {
      pair.heldUp.push(chunk);
      if (this.#mode === 'pass') this.#connectUpstream(pair);
      return;
    }
    this.#forwardUp(pair, chunk);
  }

  #fromServer(pair: ProxyPair, chunk: Buffer): void {
    if (this.#mode === 'blackhole' || pair.heldDown.length > 0) {
      pair.heldDown.push(chunk);
      return;
    }
    this.#deliver(pair, pair.client, chunk, 'down');
  }

  #forwardUp(pair: ProxyPair, chunk: Buffer): void {
    const upstream = pair.upstream;
    if (upstream === undefined) return;
    this.#deliver(pair, upstream, chunk, 'up');
    // Cuts apply after the handshake (the first client chunk) so they hit a statement.
    if (this.#armed.length === 0 || pair.chunksUp <= 1) return;
    const index = this.#armed.findIndex((a) => a.match === undefined || a.match(chunk, pair));
    if (index < 0) return;
    const [armed] = this.#armed.splice(index, 1);
    // Let the chunk reach the server first (after any latency), then cut before the reply.
    const cutAfter = (): void => {
      if (pair.closed) return armed?.resolve(pair);
      this.counters.cut++;
      this.#destroy(pair);
      armed?.resolve(pair);
    };
    this.#later(this.#latencyMs + 1, cutAfter);
  }

  #flush(pair: ProxyPair): void {
    if (pair.closed || this.#mode !== 'pass') return;
    if (pair.upstream === undefined) {
      this.#connectUpstream(pair);
      return;
    }
    if (pair.upstream.connecting) return;
    const up = pair.heldUp.splice(0);
    for (const chunk of up) this.#forwardUp(pair, chunk);
    const down = pair.heldDown.splice(0);
    for (const chunk of down) this.#deliver(pair, pair.client, chunk, 'down');
  }

  #deliver(pair: ProxyPair, to: net.Socket, chunk: Buffer, direction: 'up' | 'down'): void {
    const send = (): void => {
      if (pair.closed || to.destroyed) return;
      if (direction === 'up') this.counters.bytesUp += chunk.length;
      else this.counters.bytesDown += chunk.length;
      to.write(chunk);
    };
    if (this.#latencyMs === 0 && (this.#nextDue.get(to) ?? 0) <= performance.now()) {
      send();
      return;
    }
    const due = Math.max(performance.now() + this.#latencyMs, this.#nextDue.get(to) ?? 0);
    this.#nextDue.set(to, due);
    this.#later(due - performance.now(), send);
  }

  #later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, Math.max(0, ms));
    this.#timers.add(timer);
  }

  #destroy(pair: ProxyPair): void {
    if (pair.closed) return;
    pair.closed = true;
    this.#pairs.delete(pair.id);
    pair.heldUp.length = 0;
    pair.heldDown.length = 0;
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}
