/**
 * createCluster's rules on in-memory hosts (the fake adapter plus a `sessionRole` each host answers
 * from a role the test sets): routing per target, lag, stickiness, rerouting a call whose body never
 * ran, failing one whose body ran, waiting for a primary, options. The real thing is proved on real
 * replication in test/cluster/.
 */
import { Registry } from 'prom-client';
import { ConnectError, createCluster, PoolClosedError, type Adapter, type Cluster, type ClusterOptions, type SessionRole } from '../../src';
import { fakeAdapter, FakeError, type FakeConnection } from '../helpers/fake-adapter';

interface FakeHost {
  readonly name: string;
  readonly adapter: Adapter<FakeConnection>;
  role: SessionRole;
  down: boolean;
  probes: number;
}

const PRIMARY: SessionRole = { standby: false, readOnly: false, lagMs: 0 };
const STANDBY: SessionRole = { standby: true, readOnly: true, lagMs: 0 };

function host(name: string, role: SessionRole): FakeHost {
  const base = fakeAdapter();
  const h: FakeHost = {
    name,
    role,
    down: false,
    probes: 0,
    adapter: {
      ...base,
      connect(signal, events) {
        if (h.down) return Promise.reject(new ConnectError(`${name} refused the connection`));
        return base.connect(signal, events);
      },
      async sessionRole(conn: FakeConnection): Promise<SessionRole> {
        h.probes++;
        if (h.down) throw new FakeError('connection lost', true, false);
        await conn.query('SELECT role');
        return h.role;
      },
    },
  };
  return h;
}

function dbOf(h: FakeHost): { connections: FakeConnection[] } {
  return (h.adapter as unknown as { db: { connections: FakeConnection[] } }).db;
}

/** Which host ran a call: each fake connection (id unique across hosts) belongs to one host's adapter. */
function whoRan(hosts: readonly FakeHost[], conn: FakeConnection): string {
  const id = conn.id; // lease.conn is a guard around the connection: compare ids
  for (const h of hosts) if (dbOf(h).connections.some((c) => c.id === id)) return h.name;
  return '?';
}

const clusters: Cluster<FakeConnection>[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.close({ timeoutMs: 100 })));
});

function cluster(hosts: readonly FakeHost[], extra: Partial<ClusterOptions<FakeConnection>> = {}, poolNames: Record<string, string> = {}): Cluster<FakeConnection> {
  const c = createCluster<FakeConnection>({
    name: 'u',
    hosts: hosts.map((h) => ({ name: h.name, adapter: h.adapter, ...(poolNames[h.name] !== undefined ? { poolName: poolNames[h.name] } : {}) })),
    pool: { max: 2, acquireTimeoutMs: 500, connectTimeoutMs: 200, leakDetectionMs: 0 },
    logger: { warn: () => undefined, error: () => undefined },
    healthCheckIntervalMs: 20,
    probeTimeoutMs: 200,
    probeBackoffMaxMs: 40,
    failoverTimeoutMs: 2_000,
    ...extra,
  });
  clusters.push(c);
  return c;
}

async function until(what: string, check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('each target goes where the servers say it should', async () => {
  const hosts = [host('r1', STANDBY), host('p', PRIMARY), host('r2', STANDBY)];
  const c = cluster(hosts);
  await c.ready();
  const where = (target: Parameters<typeof c.withLease>[1]) => c.withLease(async (conn) => whoRan(hosts, conn), target);
  expect(await where({ target: 'read-write' })).toBe('p');
  expect(await where({ target: 'primary' })).toBe('p');
  expect(await c.withTx(async (conn) => whoRan(hosts, conn))).toBe('p');
  const reads = new Set<string>();
  for (let i = 0; i < 4; i++) reads.add(await c.withTx(async (conn) => whoRan(hosts, conn), { readOnly: true }));
  expect(reads).toEqual(new Set(['r1', 'r2'])); // round robin over the replicas
  for (const target of ['standby', 'read-only', 'prefer-standby', 'replica'] as const) expect(['r1', 'r2']).toContain(await where({ target }));
  expect(c.primary()).toBe('p');
});

test('maxLagMs skips a lagging replica; a stalled one (lag null) counts up from its last value', async () => {
  const hosts = [host('p', PRIMARY), host('r', { ...STANDBY, lagMs: 50 })];
  const c = cluster(hosts, { maxLagMs: 100 });
  await c.ready();
  expect(await c.withTx(async (conn) => whoRan(hosts, conn), { readOnly: true })).toBe('r');
  hosts[1]!.role = { ...STANDBY, lagMs: null };
  await until('the stalled lag passes 100 ms', () => (c.hosts()[1]?.lagMs ?? 0) > 100);
  expect(await c.withTx(async (conn) => whoRan(hosts, conn), { readOnly: true })).toBe('p');
  // A read with no host to go to fails at once (it does not wait for a failover).
  const started = Date.now();
  await expect(c.withLease(async () => 'x', { target: 'standby' })).rejects.toThrow(/no host fits target standby \(p: primary, r: standby\)/);
  expect(Date.now() - started).toBeLessThan(1_000);
  hosts[1]!.role = STANDBY;
  await until('caught up', () => c.hosts()[1]?.lagMs === 0);
  expect(await c.withTx(async (conn) => whoRan(hosts, conn), { readOnly: true })).toBe('r');
}, 10_000);

test('a call refused before its body ran is rerouted to the new primary; the body runs once', async () => {
  const hosts = [host('a', PRIMARY), host('b', STANDBY)];
  const c = cluster(hosts);
  await c.ready();
  // a goes away; b is promoted. The cluster has not probed yet: the write first goes to a.
  hosts[0]!.down = true;
  for (const conn of dbOf(hosts[0]!).connections) conn.kill();
  hosts[1]!.role = PRIMARY;
  let runs = 0;
  const ran = await c.withTx(async (conn) => {
    runs++;
    return whoRan(hosts, conn);
  });
  expect(ran).toBe('b');
  expect(runs).toBe(1);
});

test('a call whose body ran is not retried when its connection dies; the host is taken out (hostDown) and probed back', async () => {
  const hosts = [host('a', PRIMARY), host('b', STANDBY)];
  const c = cluster(hosts);
  await c.ready();
  const downs: string[] = [];
  const ups: string[] = [];
  c.on('hostDown', (e) => downs.push(e.host));
  c.on('hostUp', (e) => ups.push(e.host));
  let runs = 0;
  const err = await c
    .withTx(async (conn) => {
      runs++;
      await conn.query('FATAL');
    })
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(FakeError);
  expect(runs).toBe(1);
  expect(downs).toEqual(['a']);
  await until('a is back', () => ups.includes('a'));
  expect(c.primary()).toBe('a');
});

test('a replica that fails is probed with backoff until it answers, then used again', async () => {
  const hosts = [host('p', PRIMARY), host('r', STANDBY)];
  const c = cluster(hosts, { probeBackoffMaxMs: 40 });
  await c.ready();
  hosts[1]!.down = true;
  await until('r is out', () => c.hosts()[1]?.healthy === false);
  const before = hosts[1]!.probes;
  await until('r was probed a few times', () => hosts[1]!.probes >= before + 3);
  expect(c.hosts()[1]!.failures).toBeGreaterThanOrEqual(3);
  expect(await c.withTx(async (conn) => whoRan(hosts, conn), { readOnly: true })).toBe('p');
  hosts[1]!.down = false;
  await until('r is back', () => c.hosts()[1]?.healthy === true);
  expect(await c.withTx(async (conn) => whoRan(hosts, conn), { readOnly: true })).toBe('r');
});

test('a host whose connections are all leased is busy, not down: the probe does not take it out', async () => {
  const registry = new Registry();
  const hosts = [host('p', PRIMARY), host('r', STANDBY)];
  const c = cluster(hosts, { probeTimeoutMs: 30, metrics: { registry } });
  await c.ready();
  const pool = c.pool('r');
  const held = [await pool.acquire(), await pool.acquire()];
  const probes = hosts[1]!.probes;
  const timedOut = async (): Promise<number> =>
    (await registry.getMetricsAsJSON()).find((m) => m.name === 'leasepool_acquires_total')?.values.find((v) => v.labels.pool === 'u:r' && v.labels.outcome === 'timeout')?.value ?? 0;
  const deadline = Date.now() + 3_000;
  while ((await timedOut()) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  expect(await timedOut()).toBeGreaterThanOrEqual(2); // two probes found no free connection
  expect(c.hosts()[1]?.healthy).toBe(true);
  expect(hosts[1]!.probes).toBe(probes);
  await Promise.all(held.map((l) => l.release()));
});

test('no primary: writes wait up to failoverTimeoutMs, then fail naming what each host is', async () => {
  const hosts = [host('a', STANDBY), host('b', STANDBY)];
  const c = cluster(hosts, { failoverTimeoutMs: 150 });
  await c.ready();
  const started = Date.now();
  const err = await c.withTx(async () => 'never').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectError);
  expect((err as Error).message).toMatch(/no host fits target read-write after 150 ms \(a: standby, b: standby\)/);
  expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  // A promotion while a write waits: the write goes there.
  const c2 = cluster(hosts, { name: 'u2', failoverTimeoutMs: 2_000 });
  await c2.ready();
  const write = c2.withTx(async (conn) => whoRan(hosts, conn));
  hosts[1]!.role = PRIMARY;
  expect(await write).toBe('b');
});

test('the primary is sticky: a second host claiming to be primary gets no writes while the first answers', async () => {
  const hosts = [host('a', PRIMARY), host('b', STANDBY)];
  const c = cluster(hosts);
  await c.ready();
  hosts[1]!.role = PRIMARY; // an old primary restarted unfenced
  await until('b is seen as primary too', () => c.hosts()[1]?.role === 'primary');
  for (let i = 0; i < 4; i++) expect(await c.withTx(async (conn) => whoRan(hosts, conn))).toBe('a');
});

test('close(): calls waiting for a host reject with PoolClosedError, later calls too', async () => {
  const hosts = [host('a', STANDBY)];
  const c = cluster(hosts, { failoverTimeoutMs: 5_000 });
  await c.ready();
  const waiting = c.withTx(async () => 'never').catch((e: unknown) => e);
  await c.close();
  expect(await waiting).toBeInstanceOf(PoolClosedError);
  await expect(c.withTx(async () => 'x')).rejects.toBeInstanceOf(PoolClosedError);
});

test('metrics: every host pool under <cluster>:<host>, plus the cluster series', async () => {
  const registry = new Registry();
  const hosts = [host('p', PRIMARY), host('r', STANDBY)];
  const c = cluster(hosts, { metrics: { registry } });
  await c.ready();
  await c.withTx(async () => undefined, { readOnly: true });
  const text = await registry.metrics();
  expect(text).toContain('leasepool_acquires_total{pool="u:p",outcome="success"}');
  expect(text).toContain('leasepool_acquires_total{pool="u:r",outcome="success"}');
  expect(text).toContain('leasepool_cluster_host_up{pool="u:r",cluster="u",host="r",role="standby"} 1');
  expect(text).toContain('leasepool_cluster_replica_lag_seconds{pool="u:p",cluster="u",host="p"} 0');
  expect(text).toContain('leasepool_cluster_reads_total{pool="u:r",cluster="u",host="r",reason="target"} 1');
  expect(text).toContain('leasepool_cluster_primary_changes_total{pool="u:p",cluster="u",host="p"} 0');
  await c.close();
  // Closed: the gauges of this cluster are gone; the name is free again.
  expect(await registry.metrics()).not.toContain('leasepool_cluster_host_up{pool="u:');
  // poolName: a host pool keeps the name it had as a single pool; the cluster series follow it.
  const named = cluster([host('p', PRIMARY)], { metrics: { registry } }, { p: 'legacy' });
  await named.ready();
  expect(named.hosts()[0]).toMatchObject({ name: 'p', pool: 'legacy' });
  const after = await registry.metrics();
  expect(after).toContain('leasepool_connections_max{pool="legacy"} 2');
  expect(after).toContain('leasepool_cluster_host_up{pool="legacy",cluster="u",host="p",role="primary"} 1');
});

test('options: one ConfigError naming every bad field; an adapter that cannot tell roles; waitForReplayMs needs positions', () => {
  const plain = fakeAdapter();
  const catchErr = (fn: () => unknown): Error => {
    try {
      fn();
    } catch (e) {
      return e as Error;
    }
    throw new Error('no error');
  };
  const err = catchErr(() =>
    createCluster({
      hosts: [
        { adapter: plain },
        { adapter: host('x', PRIMARY).adapter, name: 'x' },
        { adapter: host('x', PRIMARY).adapter, name: 'x' },
        { adapter: host('y', PRIMARY).adapter, name: 'y', poolName: 'has space' },
      ],
      probeTimeoutMs: -1,
      failoverTimeoutMs: Infinity,
      maxLagMS: 5,
    } as unknown as ClusterOptions<FakeConnection>),
  );
  expect(err).toMatchObject({ code: 'INVALID_CONFIG' });
  expect(err.message).toContain('hosts[0].adapter');
  expect(err.message).toContain('no sessionRole');
  expect(err.message).toContain('hosts[2].name');
  expect(err.message).toContain('hosts[3].poolName');
  expect(err.message).toContain('probeTimeoutMs');
  expect(err.message).toContain('failoverTimeoutMs');
  expect(err.message).toMatch(/maxLagMS.*maxLagMs/);
  const replay = catchErr(() => createCluster({ hosts: [{ adapter: host('x', PRIMARY).adapter }], waitForReplayMs: 100 }));
  expect(replay.message).toContain('waitForReplayMs needs write positions');
  expect(() => createCluster({ hosts: [] })).toThrow(/hosts/);
});

test('a bad target on a call is a ConfigError', async () => {
  const c = cluster([host('p', PRIMARY)]);
  expect(() => c.withTx(async () => undefined, { target: 'sideways' as never })).toThrow(/target/);
});

test('leak reports stay per host: the host pool named <cluster>:<host> reports its own leak', async () => {
  const warnings: unknown[] = [];
  const hosts = [host('p', PRIMARY), host('r', STANDBY)];
  const c = cluster(hosts, { pool: { max: 2, leakDetectionMs: 30, acquireTimeoutMs: 500 }, logger: { warn: (obj: unknown) => warnings.push(obj), error: () => undefined } });
  await c.ready();
  const leaks: string[] = [];
  c.pool('r').on('leak', () => leaks.push('r'));
  c.pool('p').on('leak', () => leaks.push('p'));
  await c.withLease(async () => {
    await until('the leak is reported', () => leaks.length > 0);
  }, { target: 'replica' });
  expect(leaks).toEqual(['r']);
  expect(JSON.stringify(warnings)).toContain('u:r');
});
