/** Serve a prom-client registry at `http://127.0.0.1:<port>/metrics` for Prometheus to scrape. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface MetricsServer {
  /** `127.0.0.1:<port>`: the scrape target (and the `instance` label Prometheus gives the series). */
  readonly target: string;
  /** Number of scrapes answered so far. */
  scrapes(): number;
  close(): Promise<void>;
}

export async function serveRegistry(registry: Registry, port = 0): Promise<MetricsServer> {
  let scrapes = 0;
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => {
        scrapes += 1;
        res.writeHead(200, { 'content-type': registry.contentType }).end(text);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
      },
    );
  });
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    target: `127.0.0.1:${bound}`,
    scrapes: () => scrapes,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
