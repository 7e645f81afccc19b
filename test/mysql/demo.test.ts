/**
 * The demo on a real MariaDB/MySQL server, as a child process: every fault including a worker's
 * connection KILLed from the admin connection; `/metrics` scraped during the run; total unchanged.
 */
import { createConnection } from 'mysql2/promise';
import { expectHealthyRun, runDemo, summaryValue } from '../helpers/demo';

const MYSQL_URL = process.env['MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/test';
const TABLE = 'demo_bank_mysql';

afterAll(async () => {
  const conn = await createConnection(MYSQL_URL);
  try {
    await conn.query(`DROP TABLE IF EXISTS ${TABLE}`);
  } finally {
    await conn.end();
  }
});

test('a short run on MySQL/MariaDB: every fault handled, killed connections survived, total unchanged', async () => {
  const run = await runDemo(['--db', 'mysql', '--duration', '4', '--metrics-port', '0', '--table', TABLE], {
    env: { DATABASE_URL: MYSQL_URL },
    killAfterMs: 45_000,
    scrapeWhileRunning: true,
  });
  expectHealthyRun(run);
  expect(run.stdout).toMatch(/^\[fault\] backend killed mid-transaction: the transfer failed \(.+\), the pool replaces the connection$/m);
  expect(run.stdout).toMatch(/^ {2}killed backend +[1-9]\d* injected \(rate [\d.]+%\) → [1-9]\d* transfers failed and rolled back, connections replaced/m);
  expect(summaryValue(run.stdout, 'recoveries broken_connection')).toBeGreaterThan(0);
  expect(summaryValue(run.stdout, 'connections created')).toBeGreaterThan(4);
}, 50_000);
