/**
 * The mysql2 drop-in's createPoolCluster (mysql2/promise's API) over a private MariaDB primary and
 * replica (test/cluster/replication.ts). Which node served a connection is asked of the server
 * (`@@port`). A fault proxy in front of the replica makes it fail and come back, for
 * removeNodeErrorCount / restoreNodeTimeout.
 */
import { createPoolCluster, type PoolCluster, type PoolConnection } from '../../adapters/mysql2';
import { FaultProxy } from '../helpers/fault-proxy';
import { startMariadbReplicaSet, type ReplicaSet } from './replication';
import { captureLogger } from '../helpers/unit';

let set: ReplicaSet;
let proxy: FaultProxy;
const clusters: PoolCluster[] = [];

beforeAll(async () => {
  set = await startMariadbReplicaSet();
  proxy = await FaultProxy.start({ host: set.replica.host, port: set.replica.port });
}, 60_000);

afterEach(async () => {
  proxy?.setMode('pass');
  await Promise.all(clusters.splice(0).map((c) => c.end()));
});

afterAll(async () => {
  await proxy?.close();
  await set?.destroy();
});

const logger = captureLogger().logger;

function cluster(options: Parameters<typeof createPoolCluster>[0] = {}): PoolCluster {
  const c = createPoolCluster(options);
  clusters.push(c);
  const node = (port: number) => ({ host: '127.0.0.1', port, user: 'root', database: 'test', connectionLimit: 2, connectTimeout: 1_000, leasepool: { logger, leakDetectionMs: 0 } });
  c.add('MASTER', node(set.primary.port));
  c.add('REPLICA1', node(proxy.port));
  return c;
}

async function portOf(conn: PoolConnection): Promise<number> {
  try {
    const [rows] = await conn.query('SELECT @@port AS p');
    return Number((rows as { p: number }[])[0]?.p);
  } finally {
    conn.release();
  }
}

test('getConnection with patterns and selectors: ORDER, RR, RANDOM; of(pattern).query', async () => {
  const c = cluster();
  expect(await portOf(await c.getConnection('MASTER'))).toBe(set.primary.port);
  expect(await portOf(await c.getConnection('REPLICA*'))).toBe(set.replica.port);
  expect(await portOf(await c.getConnection('*', 'ORDER'))).toBe(set.primary.port);
  const rr = new Set<number>();
  for (let i = 0; i < 4; i++) rr.add(await portOf(await c.getConnection('*', 'RR')));
  expect(rr).toEqual(new Set([set.primary.port, set.replica.port]));
  const random = new Set<number>();
  for (let i = 0; i < 40 && random.size < 2; i++) random.add(await portOf(await c.getConnection('*', 'RANDOM')));
  expect(random).toEqual(new Set([set.primary.port, set.replica.port]));
  const [rows] = await c.of('REPLICA*').query('SELECT @@port AS p');
  expect(rows).toEqual([{ p: set.replica.port }]);
  const [executed] = await c.of('MASTER').execute('SELECT @@port AS p');
  expect(executed).toEqual([{ p: set.primary.port }]);
});

test("unknown patterns: POOL_NOEXIST; remove() takes a node out; a bad selector is a ConfigError", async () => {
  const c = cluster();
  await expect(c.getConnection('NOPE*')).rejects.toMatchObject({ code: 'POOL_NOEXIST', message: 'Pool does Not exist.' });
  c.remove('REPLICA*');
  await expect(c.getConnection('REPLICA*')).rejects.toMatchObject({ code: 'POOL_NOEXIST' });
  expect(await portOf(await c.getConnection())).toBe(set.primary.port);
  expect(() => c.of('*', 'SIDEWAYS')).toThrow(/selector/);
});

test('canRetry: a failing node makes getConnection warn and serve from another node of the pattern', async () => {
  const c = cluster({ removeNodeErrorCount: 100 });
  const warns: Error[] = [];
  c.on('warn', (e) => warns.push(e));
  proxy.setMode('drop');
  // Round robin alternates between the nodes: every second pick is the failing replica.
  const ports = [];
  for (let i = 0; i < 4; i++) ports.push(await portOf(await c.getConnection('*', 'RR')));
  expect(ports).toEqual([set.primary.port, set.primary.port, set.primary.port, set.primary.port]);
  expect(warns.length).toBeGreaterThanOrEqual(1);
  // Without canRetry the failure reaches the caller.
  const strict = cluster({ canRetry: false, removeNodeErrorCount: 100 });
  await expect(strict.getConnection('REPLICA1')).rejects.toBeInstanceOf(Error);
});

test('restoreNodeTimeout: after removeNodeErrorCount failures the node goes offline, and returns (online) once it answers again', async () => {
  const c = cluster({ removeNodeErrorCount: 2, restoreNodeTimeout: 300, canRetry: false });
  const events: string[] = [];
  c.on('offline', (id) => events.push(`offline:${id}`));
  c.on('online', (id) => events.push(`online:${id}`));
  c.on('remove', (id) => events.push(`remove:${id}`));
  proxy.setMode('drop');
  for (let i = 0; i < 2; i++) await expect(c.getConnection('REPLICA1')).rejects.toBeInstanceOf(Error);
  expect(events).toEqual(['offline:REPLICA1']);
  await expect(c.getConnection('REPLICA1')).rejects.toMatchObject({ code: 'POOL_NONEONLINE' });
  proxy?.setMode('pass');
  const deadline = Date.now() + 5_000;
  let port: number | undefined;
  while (port === undefined && Date.now() < deadline) {
    port = await c.getConnection('REPLICA1').then(portOf, () => undefined);
    if (port === undefined) await new Promise((r) => setTimeout(r, 50));
  }
  expect(port).toBe(set.replica.port);
  expect(events).toEqual(['offline:REPLICA1', 'online:REPLICA1']);
});

test('without restoreNodeTimeout a failing node is removed for good (mysql2 semantics)', async () => {
  const c = cluster({ removeNodeErrorCount: 1, canRetry: false });
  const removed: string[] = [];
  c.on('remove', (id) => removed.push(id));
  proxy.setMode('drop');
  await expect(c.getConnection('REPLICA1')).rejects.toBeInstanceOf(Error);
  expect(removed).toEqual(['REPLICA1']);
  proxy?.setMode('pass');
  await expect(c.getConnection('REPLICA1')).rejects.toMatchObject({ code: 'POOL_NOEXIST' });
});

test('end() ends every node; getConnection afterwards rejects', async () => {
  const c = cluster();
  expect(await portOf(await c.getConnection('MASTER'))).toBe(set.primary.port);
  await c.end();
  await expect(c.getConnection()).rejects.toMatchObject({ code: 'POOL_CLOSED' });
});
