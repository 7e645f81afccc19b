/**
 * `pg-outage` / `mysql-outage`: steady load, the server stopped for 2 s, then started again, on a
 * private server of the installed version (test/chaos/scenarios/private-server.ts: `initdb` +
 * `pg_ctl`, `mariadb-install-db` + `mariadbd`, on a port of its own on 127.0.0.1), so the shared
 * servers and everyone else's tests are untouched. For leasepool and the driver's pool in turn
 * (16 callers looping `SELECT 1` on max 10; a caller whose op failed waits 10 ms before the next;
 * 1 s of warm-up, then 1 s of steady load measured):
 *
 * - errors from the stop until the first success after the restart;
 * - from the moment the server accepts TCP again (probed every 5 ms) to the first success, and to
 *   the first 200 ms window with ≥ 90% of the steady throughput;
 * - errors after that first success (a dead connection handed out after recovery);
 * - broken connections left in the pool: once recovered, `max` callers hold a connection at once
 *   and each runs `SELECT 1`; every failure is a broken connection the pool kept (0 for leasepool).
 *
 * Bounded: each phase has a deadline (recovery: 8 s after the restart), loopback only.
 */
import * as net from 'node:net';
import { startPrivateServer, type PrivateServer } from '../../test/chaos/scenarios/private-server';
import { fmtInt, renderTable } from '../lib/harness';
import { ConnectCounter, mysqlKit, pgKit, type DriverKit } from '../lib/drivers';
import type { BenchOptions, Check, Scenario, ScenarioResult } from '../lib/scenario';

const CALLERS = 16;
const MAX = 10;
const WARMUP_MS = 1_000;
const STEADY_MS = 1_000;
const DOWN_MS = 2_000;
const RECOVERY_LIMIT_MS = 8_000;
const WINDOW_MS = 200;
const now = (): number => performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Target {
  op(): Promise<unknown>;
  /** `max` callers holding a connection at once, each running SELECT 1: how many failed. */
  sweep(): Promise<number>;
  close(): Promise<unknown>;
}

interface OutageRun {
  readonly steadyOpsPerSec: number;
  readonly errorsDuringOutage: number;
  readonly firstSuccessMs: number;
  readonly to90Ms: number;
  readonly errorsAfterRecovery: number;
  readonly brokenInPool: number;
}

function tcpAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(200, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function outage(server: PrivateServer, target: Target): Promise<OutageRun> {
  const successes: number[] = [];
  const errors: number[] = [];
  let running = true;
  const caller = async (): Promise<void> => {
    while (running) {
      try {
        await target.op();
        successes.push(now());
      } catch {
        errors.push(now());
        await sleep(10);
      }
    }
  };
  const callers = Array.from({ length: CALLERS }, caller);
  // Warm first: the pool opens its connections and V8 optimizes the client, so that the steady
  // throughput (what recovery is measured against) is each pool's own, not how cold it started.
  await sleep(WARMUP_MS);
  const t0 = now();
  const before = successes.length;
  await sleep(STEADY_MS);
  const steady = (successes.length - before) / ((now() - t0) / 1000);
  const tStop = now();
  await server.stop();
  await sleep(DOWN_MS);
  let tAccept = NaN;
  const probing = (async () => {
    while (Number.isNaN(tAccept) && now() - tStop < DOWN_MS + 60_000) {
      if (await tcpAnswers(server.endpoint.port)) tAccept = now();
      else await sleep(5);
    }
  })();
  await server.start();
  await probing;
  // Until the throughput is back (or the deadline).
  const need = steady * 0.9 * (WINDOW_MS / 1000);
  let to90 = NaN;
  while (now() - tAccept < RECOVERY_LIMIT_MS) {
    await sleep(20);
    const t = now();
    if (t - tAccept >= WINDOW_MS && successes.filter((s) => s > t - WINDOW_MS).length >= need) {
      // The window that first reached 90% ended at t: report its end, the soonest it was seen.
      to90 = t - tAccept;
      break;
    }
  }
  running = false;
  await Promise.all(callers);
  // No op can succeed between the server going down and accepting again: the first one after that.
  const first = successes.find((t) => t > tAccept);
  const firstAfter = first === undefined ? NaN : first - tAccept;
  const brokenInPool = await target.sweep();
  await target.close();
  return {
    steadyOpsPerSec: steady,
    errorsDuringOutage: errors.filter((t) => t >= tStop && (first === undefined || t < first)).length,
    firstSuccessMs: firstAfter,
    to90Ms: to90,
    errorsAfterRecovery: first === undefined ? 0 : errors.filter((t) => t > first).length,
    brokenInPool,
  };
}

function outageScenario(kit: DriverKit): Scenario {
  const kind = kit.db === 'pg' ? 'postgres' : 'mariadb';
  return {
    name: `${kit.db}-outage`,
    title: `steady load, a private ${kind} server stopped for ${DOWN_MS / 1000} s and started again: errors, recovery, broken connections`,
    async run(_options: BenchOptions): Promise<ScenarioResult> {
      const server = await startPrivateServer(kind);
      const url = kit.url(server.endpoint);
      const runs: Record<string, OutageRun> = {};
      try {
        const leasepool = (): Target => {
          const pool = kit.leasepool(url, { max: MAX, acquireTimeoutMs: 2_000, connectTimeoutMs: 1_000, logger: { warn: () => undefined, error: () => undefined } }, new ConnectCounter());
          return {
            op: () => pool.withLease((conn) => conn.query('SELECT 1')),
            async sweep() {
              let inside = 0;
              let failed = 0;
              await Promise.all(
                Array.from({ length: MAX }, () =>
                  pool
                    .withLease(async (conn) => {
                      inside++;
                      while (inside < MAX) await sleep(1);
                      await conn.query('SELECT 1');
                    })
                    .catch(() => {
                      failed++;
                    }),
                ),
              );
              return failed;
            },
            close: () => pool.close(),
          };
        };
        const driver = (): Target => {
          const pool = kit.driverPool(url, MAX, new ConnectCounter());
          return {
            async op() {
              const conn = await pool.checkout();
              let broken = false;
              try {
                return await conn.query('SELECT 1');
              } catch (err) {
                broken = true;
                throw err;
              } finally {
                conn.release(broken);
              }
            },
            async sweep() {
              const conns = await Promise.all(Array.from({ length: MAX }, () => pool.checkout()));
              let failed = 0;
              for (const c of conns) {
                const ok = await c.query('SELECT 1').then(
                  () => true,
                  () => false,
                );
                if (!ok) failed++;
                c.release(!ok);
              }
              return failed;
            },
            close: () => pool.end(),
          };
        };
        runs['leasepool'] = await outage(server, leasepool());
        process.stderr.write('.');
        runs[kit.driverName] = await outage(server, driver());
        process.stderr.write('\n');
      } finally {
        await server.destroy();
      }
      const ms = (v: number): string => (Number.isFinite(v) ? fmtInt(v) : 'not within the limit');
      const rows = Object.entries(runs).map(([name, r]) => [
        name,
        fmtInt(r.steadyOpsPerSec),
        fmtInt(r.errorsDuringOutage),
        ms(r.firstSuccessMs),
        ms(r.to90Ms),
        fmtInt(r.errorsAfterRecovery),
        fmtInt(r.brokenInPool),
      ]);
      const table =
        `outage of ${DOWN_MS / 1000} s on a private ${kind} server, ${CALLERS} callers, max ${MAX} (times in ms from the server accepting TCP again)\n` +
        renderTable(['variant', 'steady ops/s', 'errors in outage', 'first success', 'to 90% ops/s', 'errors after recovery', 'broken in pool'], rows);
      const lp = runs['leasepool'];
      const peer = runs[kit.driverName];
      const checks: Check[] = [];
      if (lp !== undefined) {
        checks.push({ label: 'leasepool: no broken connection in the pool afterwards', ok: lp.brokenInPool === 0, detail: `${lp.brokenInPool} of ${MAX} failed` });
        checks.push({ label: 'leasepool: recovers to 90% within the limit', ok: Number.isFinite(lp.to90Ms), detail: `${ms(lp.to90Ms)} ms (limit ${RECOVERY_LIMIT_MS} ms)` });
        if (peer !== undefined) {
          checks.push({
            label: `leasepool first success no later than ${kit.driverName} + ${WINDOW_MS} ms`,
            ok: lp.firstSuccessMs <= peer.firstSuccessMs + WINDOW_MS,
            detail: `${ms(lp.firstSuccessMs)} vs ${ms(peer.firstSuccessMs)} ms`,
          });
        }
      }
      return { tables: [table], budgets: [], checks, extra: { runs } };
    },
  };
}

export const pgOutage = outageScenario(pgKit);
export const mysqlOutage = outageScenario(mysqlKit);
