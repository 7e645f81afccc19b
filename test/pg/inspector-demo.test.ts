/**
 * The demo (`npm start`) serves the lease inspector next to `/metrics` and prints its address; the
 * demo's leaked lease shows on it while it happens. Table: demo_inspector_pg (dropped after).
 */
import { Client } from 'pg';
import type { InspectorSnapshot } from '../../src';
import { expectHealthyRun, get, runDemo } from '../helpers/demo';

const PG_URL = process.env['PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const TABLE = 'demo_inspector_pg';

afterAll(async () => {
  const client = new Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`DROP TABLE IF EXISTS ${TABLE}`);
  } finally {
    await client.end();
  }
});

test('the demo prints the inspector URL, and its leaked lease shows there as leaked while the demo runs', async () => {
  let polling: Promise<{ leakedSeen: boolean; statementSeen: boolean; polls: number }> | undefined;
  let exited = false;
  const watch = async (url: string): Promise<{ leakedSeen: boolean; statementSeen: boolean; polls: number }> => {
    let leakedSeen = false;
    let statementSeen = false;
    let polls = 0;
    while (!exited && !(leakedSeen && statementSeen)) {
      const reply = await get(`${url}.json`).catch(() => undefined);
      if (reply?.status === 200) {
        polls++;
        const pool = (JSON.parse(reply.body) as InspectorSnapshot).pools[0];
        if (pool?.leases.some((l) => l.leaked) === true || pool?.recent.some((r) => r.kind === 'leak') === true) leakedSeen = true;
        if (pool?.leases.some((l) => l.statement !== null) === true) statementSeen = true;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return { leakedSeen, statementSeen, polls };
  };
  const run = await runDemo(['--db', 'pg', '--duration', '4', '--metrics-port', '0', '--table', TABLE, '--kill-rate', '0'], {
    env: { DATABASE_URL: PG_URL },
    killAfterMs: 45_000,
    scrapeWhileRunning: true,
    onStdout: (stdout) => {
      const url = /^inspector: (http:\/\/127\.0\.0\.1:\d+\/debug\/leases)$/m.exec(stdout)?.[1];
      if (url !== undefined && polling === undefined) polling = watch(url);
    },
  });
  exited = true;
  expectHealthyRun(run);
  expect(polling).toBeDefined();
  const seen = await polling!;
  expect(seen.polls).toBeGreaterThan(0);
  expect(seen.leakedSeen).toBe(true);
  expect(seen.statementSeen).toBe(true);
}, 50_000);
