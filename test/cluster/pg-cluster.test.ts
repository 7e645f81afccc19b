/**
 * createCluster on real PostgreSQL streaming replication: a private primary and a replica made
 * with pg_basebackup -R (test/cluster/replication.ts). Routing is proved by asking each server
 * who it is (`inet_server_port()`), not by trusting the cluster.
 */
import { Registry } from 'prom-client';
import type { Client } from 'pg';
import { pgAdapter, type PgQuery } from '../../adapters/pg';
import { createCluster, type Cluster, type ClusterOptions, type ClusterTarget } from '../../src';
import { startPgReplicaSet, type ReplicaSet } from './replication';
import { captureLogger } from '../helpers/unit';
import { FaultProxy } from '../helpers/fault-proxy';
import { TxOutcomeUnknownError } from '../../src';

let set: ReplicaSet;
const clusters: Cluster<Client, PgQuery>[] = [];

beforeAll(async () => {
  set = await startPgReplicaSet();
  await set.query(set.primary, 'CREATE TABLE items (id serial PRIMARY KEY, note text)');
  await set.caughtUp();
}, 60_000);

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.close({ timeoutMs: 2_000 })));
});

afterAll(async () => {
  await set?.destroy();
});

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function cluster(extra: Partial<ClusterOptions<Client, PgQuery>> = {}): { cluster: Cluster<Client, PgQuery>; registry: Registry } {
  const registry = new Registry();
  const c = createCluster<Client, PgQuery>({
    name: 'pgc',
    // The replica first: who is primary is asked, not taken from the order.
    hosts: [
      { name: 'b', adapter: pgAdapter(set.replica.url) },
      { name: 'a', adapter: pgAdapter(set.primary.url) },
    ],
    pool: { max: 4, connectTimeoutMs: 1_000, acquireTimeoutMs: 2_000, leakDetectionMs: 0 },
    healthCheckIntervalMs: 100,
    probeTimeoutMs: 1_000,
    probeBackoffMaxMs: 400,
    metrics: { registry },
    logger: captureLogger().logger,
    ...extra,
  } as ClusterOptions<Client, PgQuery>);
  clusters.push(c);
  return { cluster: c, registry };
}

const port = async (conn: Client): Promise<number> => (await conn.query<{ p: number }>('SELECT inet_server_port() AS p')).rows[0]!.p;

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value;
}

test('the cluster asks who is primary: writes go to the primary, readOnly transactions to the replica, each server says so', async () => {
  const { cluster: c } = cluster();
  await c.ready();
  expect(c.primary()).toBe('a');
  expect(c.hosts()).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ name: 'a', role: 'primary', healthy: true, readOnly: false, lagMs: 0 }),
      expect.objectContaining({ name: 'b', role: 'standby', healthy: true, readOnly: true }),
    ]),
  );
  expect(await c.withTx(port)).toBe(set.primary.port);
  expect(await c.withLease(port)).toBe(set.primary.port);
  expect(await c.withTx(port, { readOnly: true })).toBe(set.replica.port);
  expect(await c.withLease(port, { target: 'replica' })).toBe(set.replica.port);
  // The replica really is one: a write there is refused by the server.
  const refused = await c.withLease((conn) => conn.query("INSERT INTO items (note) VALUES ('x')"), { target: 'standby' }).catch((e: unknown) => e);
  expect(refused).toMatchObject({ code: '25006' });
});

test.each<[ClusterTarget, 'primary' | 'replica']>([
  ['read-write', 'primary'],
  ['primary', 'primary'],
  ['read-only', 'replica'],
  ['standby', 'replica'],
  ['prefer-standby', 'replica'],
  ['replica', 'replica'],
])('target_session_attrs %s goes to the %s', async (target, where) => {
  const { cluster: c } = cluster();
  await c.ready();
  expect(await c.withLease(port, { target })).toBe(where === 'primary' ? set.primary.port : set.replica.port);
});

test("'any' uses both hosts; nested calls stay on the host of the outer call (a savepoint there)", async () => {
  const { cluster: c } = cluster();
  await c.ready();
  const seen = new Set<number>();
  for (let i = 0; i < 6; i++) seen.add(await c.withLease(port, { target: 'any' }));
  expect(seen).toEqual(new Set([set.primary.port, set.replica.port]));
  const ports = await c.withTx(async (conn) => [await port(conn), await c.withLease(port, { target: 'replica' })]);
  expect(ports).toEqual([set.primary.port, set.primary.port]);
});

test('cluster.query: one statement on the primary; inside a call, on that call\'s connection', async () => {
  const { cluster: c } = cluster();
  await c.ready();
  const { rows } = await c.query<{ p: number }>('SELECT inet_server_port() AS p');
  expect(rows[0]?.p).toBe(set.primary.port);
  const inside = await c.withLease(async (conn) => {
    const [mine, viaQuery] = await Promise.all([
      conn.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'),
      c.query<{ pid: number; p: number }>('SELECT pg_backend_pid() AS pid, inet_server_port() AS p'),
    ]);
    return { same: mine.rows[0]?.pid === viaQuery.rows[0]?.pid, port: viaQuery.rows[0]?.p };
  }, { target: 'replica' });
  expect(inside).toEqual({ same: true, port: set.replica.port });
  expect(() => c.pool('nope')).toThrow(/no host "nope" \(hosts: b, a\)/);
});

test('read-your-writes: inside a session a read after a write stays on the primary and sees it; outside, reads go to the replica', async () => {
  const { cluster: c, registry } = cluster();
  await c.ready();
  await set.query(set.replica, 'SELECT pg_wal_replay_pause()');
  try {
    const seen = await c.session(async () => {
      const before = await c.withTx(port, { readOnly: true });
      const id = await c.withTx(async (conn) => (await conn.query<{ id: number }>("INSERT INTO items (note) VALUES ('ryw') RETURNING id")).rows[0]!.id);
      const after = await c.withTx(async (conn) => ({ port: await port(conn), rows: (await conn.query('SELECT 1 FROM items WHERE id = $1', [id])).rowCount }), { readOnly: true });
      return { before, after, id };
    });
    expect(seen.before).toBe(set.replica.port);
    expect(seen.after).toEqual({ port: set.primary.port, rows: 1 });
    // Outside the session: the replica, which (replay paused) has not got the row.
    const outside = await c.withTx(async (conn) => ({ port: await port(conn), rows: (await conn.query('SELECT 1 FROM items WHERE id = $1', [seen.id])).rowCount }), { readOnly: true });
    expect(outside).toEqual({ port: set.replica.port, rows: 0 });
    expect(await metric(registry, 'leasepool_cluster_reads_total', { pool: 'pgc:a', cluster: 'pgc', host: 'a', reason: 'read_your_writes' })).toBe(1);
  } finally {
    await set.query(set.replica, 'SELECT pg_wal_replay_resume()');
  }
});

test('read-your-writes with waitForReplayMs: the read goes to the replica once it has replayed the write (pg_last_wal_replay_lsn)', async () => {
  const { cluster: c } = cluster({ waitForReplayMs: 5_000 });
  await c.ready();
  const seen = await c.session(async () => {
    const id = await c.withTx(async (conn) => (await conn.query<{ id: number }>("INSERT INTO items (note) VALUES ('lsn') RETURNING id")).rows[0]!.id);
    return c.withTx(async (conn) => ({ port: await port(conn), rows: (await conn.query('SELECT 1 FROM items WHERE id = $1', [id])).rowCount }), { readOnly: true });
  });
  expect(seen).toEqual({ port: set.replica.port, rows: 1 });
});

test('waitForReplayMs with the replay paused: the read waits that long for the replica, then goes to the primary', async () => {
  const { cluster: c, registry } = cluster({ waitForReplayMs: 300 });
  await c.ready();
  await set.query(set.replica, 'SELECT pg_wal_replay_pause()');
  try {
    const seen = await c.session(async () => {
      const id = await c.withTx(async (conn) => (await conn.query<{ id: number }>("INSERT INTO items (note) VALUES ('lsn-paused') RETURNING id")).rows[0]!.id);
      const started = Date.now();
      const read = await c.withTx(async (conn) => ({ port: await port(conn), rows: (await conn.query('SELECT 1 FROM items WHERE id = $1', [id])).rowCount }), { readOnly: true });
      return { ...read, waitedMs: Date.now() - started };
    });
    expect(seen).toMatchObject({ port: set.primary.port, rows: 1 });
    expect(seen.waitedMs).toBeGreaterThanOrEqual(290);
    expect(await metric(registry, 'leasepool_cluster_reads_total', { pool: 'pgc:a', cluster: 'pgc', host: 'a', reason: 'read_your_writes' })).toBe(1);
  } finally {
    await set.query(set.replica, 'SELECT pg_wal_replay_resume()');
  }
});

test('the lag gauge moves under a paused replay; past maxLagMs the replica is skipped, and comes back when it catches up', async () => {
  const { cluster: c, registry } = cluster({ maxLagMs: 300 });
  await c.ready();
  const lagOf = (): number | null | undefined => c.hosts().find((h) => h.name === 'b')?.lagMs;
  await until('the replica is caught up', () => lagOf() === 0);
  expect(await c.withTx(port, { readOnly: true })).toBe(set.replica.port);
  await set.query(set.replica, 'SELECT pg_wal_replay_pause()');
  try {
    // Writes keep coming; the replica receives WAL but does not replay it.
    const writer = setInterval(() => void set.query(set.primary, "INSERT INTO items (note) VALUES ('lag')").catch(() => undefined), 50);
    try {
      await until('the lag passes maxLagMs', () => (lagOf() ?? 0) > 300);
      const gauge = await metric(registry, 'leasepool_cluster_replica_lag_seconds', { pool: 'pgc:b', cluster: 'pgc', host: 'b' });
      expect(gauge).toBeGreaterThan(0.3);
      expect(await c.withTx(port, { readOnly: true })).toBe(set.primary.port);
      expect(await metric(registry, 'leasepool_cluster_reads_total', { pool: 'pgc:a', cluster: 'pgc', host: 'a', reason: 'no_replica' })).toBeGreaterThanOrEqual(1);
    } finally {
      clearInterval(writer);
    }
  } finally {
    await set.query(set.replica, 'SELECT pg_wal_replay_resume()');
  }
  await until('the replica has caught up', () => lagOf() === 0);
  expect(await c.withTx(port, { readOnly: true })).toBe(set.replica.port);
});

test("a replica stopped: reads go to the primary (no_replica), or fail with replicaFallback 'fail'; started again, it is probed back", async () => {
  const { cluster: c, registry } = cluster();
  const strict = cluster({ name: 'strict', replicaFallback: 'fail', failoverTimeoutMs: 300 }).cluster;
  await Promise.all([c.ready(), strict.ready()]);
  const downs: string[] = [];
  const ups: string[] = [];
  c.on('hostDown', (e) => downs.push(e.host));
  c.on('hostUp', (e) => ups.push(e.host));
  await set.replica.stop('fast');
  try {
    await until('the replica is seen down', () => c.hosts().find((h) => h.name === 'b')?.healthy === false);
    expect(downs).toContain('b');
    expect(await c.withTx(port, { readOnly: true })).toBe(set.primary.port);
    expect(await metric(registry, 'leasepool_cluster_host_up', { pool: 'pgc:b', cluster: 'pgc', host: 'b' })).toBe(0);
    await until('strict sees it down', () => strict.hosts().find((h) => h.name === 'b')?.healthy === false);
    await expect(strict.withTx(port, { readOnly: true })).rejects.toMatchObject({ code: 'CONNECT_FAILED', message: expect.stringContaining('no host fits target replica') });
  } finally {
    await set.replica.start();
  }
  await until('the replica is back', () => c.hosts().find((h) => h.name === 'b')?.healthy === true);
  expect(ups).toContain('b');
  expect(await c.withTx(port, { readOnly: true })).toBe(set.replica.port);
  await set.caughtUp();
}, 30_000);

test('bad options: one ConfigError naming every bad field', () => {
  let err: unknown;
  try {
    createCluster<Client>({
      hosts: [{ adapter: pgAdapter(set.primary.url), name: 'bad name' }, { adapter: { name: 'x' } as never }],
      maxLagMs: -1,
      replicaFallback: 'nope' as never,
      readOnlyTarget: 'sideways' as never,
      healthCheckIntervalMs: 0,
      bogus: 1,
    } as unknown as ClusterOptions<Client>);
  } catch (e) {
    err = e;
  }
  expect(err).toMatchObject({ code: 'INVALID_CONFIG' });
  for (const field of ['hosts[0].name', 'hosts[1].adapter', 'maxLagMs', 'replicaFallback', 'readOnlyTarget', 'healthCheckIntervalMs', 'bogus']) {
    expect((err as Error).message).toContain(field);
  }
});

test('the connection to the primary lost during COMMIT: TxOutcomeUnknownError, never a retry; the host is probed back in', async () => {
  const proxy = await FaultProxy.start({ host: set.primary.host, port: set.primary.port });
  try {
    const { cluster: c } = cluster({
      hosts: [
        { name: 'b', adapter: pgAdapter(set.replica.url) },
        { name: 'a', adapter: pgAdapter(`postgres://postgres@127.0.0.1:${proxy.port}/postgres`) },
      ],
    });
    await c.ready();
    expect(c.primary()).toBe('a');
    let runs = 0;
    // Replies held a little, so the cut surely lands between COMMIT and its reply.
    proxy.setLatency(50);
    const cut = proxy.cutNext((chunk) => chunk.includes('COMMIT'));
    const err = await c
      .withTx(async (conn) => {
        runs++;
        await conn.query("INSERT INTO items (note) VALUES ('commit-cut')");
      })
      .catch((e: unknown) => e);
    await cut;
    proxy.setLatency(0);
    expect(err).toBeInstanceOf(TxOutcomeUnknownError);
    expect(runs).toBe(1);
    // The server did commit (the reply was lost): the outcome really was unknown to the client.
    expect(await set.query(set.primary, "SELECT count(*)::int AS n FROM items WHERE note = 'commit-cut'")).toEqual([{ n: 1 }]);
    await until('the primary is back in', () => c.primary() === 'a' && c.hosts().find((h) => h.name === 'a')?.healthy === true);
    expect(await c.withTx(port)).toBe(set.primary.port);
  } finally {
    await proxy.close();
  }
});

// Last: it promotes the replica, so the set-up is no longer primary + replica afterwards.
test('failover: the primary goes away mid-transaction (that transaction fails, nothing of it applied); the promoted standby takes writes within a bounded time', async () => {
  const { cluster: c, registry } = cluster({ failoverTimeoutMs: 15_000 });
  await c.ready();
  const changes: { from: string | undefined; to: string }[] = [];
  c.on('primaryChanged', (e) => changes.push(e));
  await set.caughtUp();

  let entered!: () => void;
  const inBody = new Promise<void>((r) => (entered = r));
  const inFlight = c
    .withTx(async (conn) => {
      await conn.query("INSERT INTO items (note) VALUES ('in-flight')");
      entered();
      await conn.query('SELECT pg_sleep(30)');
    })
    .then(
      () => 'committed',
      (e: unknown) => e,
    );
  await inBody;
  await set.primary.stop('immediate');
  const failed = await inFlight;
  expect(failed).toBeInstanceOf(Error);
  // The pool's own error for a lost connection (pg: "Connection terminated unexpectedly").
  expect((failed as Error).message).toMatch(/terminat|connection/i);
  expect(c.hosts().find((h) => h.name === 'a')?.healthy).toBe(false);

  // A write issued now waits for a primary; the standby is promoted meanwhile.
  const started = Date.now();
  const write = c.withTx(async (conn) => {
    await conn.query("INSERT INTO items (note) VALUES ('after-failover')");
    return port(conn);
  });
  await set.query(set.replica, 'SELECT pg_promote()');
  expect(await write).toBe(set.replica.port);
  expect(Date.now() - started).toBeLessThan(15_000);
  expect(c.primary()).toBe('b');
  expect(changes).toContainEqual({ from: 'a', to: 'b' });
  expect(await metric(registry, 'leasepool_cluster_primary_changes_total', { pool: 'pgc:b', host: 'b' })).toBe(1);
  // Never half-applied: the in-flight row is not on the new primary, the later one is.
  const rows = await set.query(set.replica, "SELECT note FROM items WHERE note IN ('in-flight', 'after-failover')");
  expect(rows).toEqual([{ note: 'after-failover' }]);
}, 30_000);
