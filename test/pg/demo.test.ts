/**
 * The demo on a real PostgreSQL server, as a child process: every fault including a backend killed
 * by pg_terminate_backend from the admin connection; `/metrics` scraped during the run; SIGINT ends
 * a run early with the summary; `--serve` keeps `/metrics` up after the run until a signal.
 */
import { Client } from 'pg';
import { expectHealthyRun, get, runDemo, summaryValue } from '../helpers/demo';

const PG_URL = process.env['PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const TABLE = 'demo_bank_pg';

afterAll(async () => {
  const client = new Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`DROP TABLE IF EXISTS ${TABLE}`);
  } finally {
    await client.end();
  }
});

test('a short run on PostgreSQL: every fault handled, killed backends survived, total unchanged', async () => {
  const run = await runDemo(['--db', 'pg', '--duration', '4', '--metrics-port', '0', '--table', TABLE], {
    env: { DATABASE_URL: PG_URL },
    killAfterMs: 45_000,
    scrapeWhileRunning: true,
  });
  expectHealthyRun(run);
  expect(run.stdout).toMatch(/^\[fault\] backend killed mid-transaction: the transfer failed \(.+\), the pool replaces the connection$/m);
  expect(run.stdout).toMatch(/^ {2}killed backend +[1-9]\d* injected \(rate [\d.]+%\) → [1-9]\d* transfers failed and rolled back, connections replaced/m);
  expect(summaryValue(run.stdout, 'recoveries broken_connection')).toBeGreaterThan(0);
  // Work went on after the kills: more connections were opened than the pool's max.
  expect(summaryValue(run.stdout, 'connections created')).toBeGreaterThan(4);
}, 50_000);

test('SIGINT ends the run early, cleanly, with the summary', async () => {
  let sent = false;
  const run = await runDemo(['--db', 'pg', '--duration', '60', '--metrics-port', '0', '--table', TABLE], {
    env: { DATABASE_URL: PG_URL },
    killAfterMs: 30_000,
    onStdout: (stdout, child) => {
      // After the second status line: the workload is in full swing.
      if (!sent && (stdout.match(/transfers\/s/g)?.length ?? 0) >= 2) {
        sent = true;
        child.kill('SIGINT');
      }
    },
  });
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  expect(run.stdout).toMatch(/^SIGINT: stopping the workers…$/m);
  expect(run.stdout).toMatch(/^── summary/m);
  expect(run.stdout).toMatch(/^total balance unchanged: yes$/m);
  expect(run.elapsedMs).toBeLessThan(25_000);
}, 35_000);

test('--serve keeps /metrics up after the run until SIGTERM', async () => {
  let url: string | undefined;
  let scrape: Promise<{ status: number; body: string }> | undefined;
  const run = await runDemo(
    ['--db', 'pg', '--duration', '1', '--metrics-port', '0', '--table', TABLE, '--serve', '--leak-rate', '0', '--kill-rate', '0'],
    {
      env: { DATABASE_URL: PG_URL },
      killAfterMs: 30_000,
      onStdout: (stdout, child) => {
        url ??= /^metrics: (http:\/\/\S+)$/m.exec(stdout)?.[1];
        if (scrape === undefined && url !== undefined && /^still serving /m.test(stdout)) {
          scrape = get(url).finally(() => child.kill('SIGTERM'));
        }
      },
    },
  );
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  expect(run.stdout).toMatch(/^total balance unchanged: yes$/m);
  const after = await scrape;
  expect(after?.status).toBe(200);
  // After the run the pool is closed: its counters are still there, with the run's totals.
  expect(after?.body).toMatch(/^leasepool_transactions_total\{pool="bank",outcome="commit"\} [1-9]\d*$/m);
}, 35_000);
