/**
 * The demo `npm start` runs, on embedded PGlite, as a child process: a few seconds of transfers with
 * every fault injected, `/metrics` scraped during the run, the summary and the invariant; then the
 * ways it must refuse to start (bad flags, an unreachable DATABASE_URL): one line on stderr, a
 * non-zero exit, no stack trace, no hang.
 */
import { closedPort, expectHealthyRun, runDemo, summaryValue, type DemoRun } from '../helpers/demo';

function expectOneLineRefusal(run: DemoRun, code: number, message: RegExp): void {
  const context = `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
  expect({ code: run.code, context }).toEqual({ code, context });
  const lines = run.stderr.split('\n').filter((line) => line !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(message);
  expect(run.stderr).not.toMatch(/^\s+at /m);
  expect(run.stdout).not.toMatch(/^\s+at /m);
}

test('a short run on PGlite: transfers, every fault handled, /metrics live, total unchanged', async () => {
  const run = await runDemo(['--duration', '4', '--metrics-port', '0'], { killAfterMs: 55_000, scrapeWhileRunning: true });
  expectHealthyRun(run);
  // PGlite is one session: the pool says it clamped max, once.
  expect(run.stdout.match(/max 4 clamped to 1/g)).toHaveLength(1);
  expect(run.stdout).toMatch(/^ {2}killed backend +n\/a /m);
  // A status line per second while it ran (stdout is not a TTY here).
  const statusLines = run.stdout.match(/^ +\d+\.\d s \| +[\d ]+ transfers\/s \| committed [\d ]+ \| rolled back [\d ]+ \| retried [\d ]+ \| leases active \d+ idle \d+ waiting \d+ \| leaks [\d ]+ \| reclaimed [\d ]+ \| deadlines [\d ]+$/gm);
  expect(statusLines?.length).toBeGreaterThanOrEqual(2);
  expect(summaryValue(run.stdout, 'connections created')).toBeGreaterThan(1); // reclaimed connections were replaced
}, 60_000);

test('--workers -3: one line on stderr, exit 2', async () => {
  const run = await runDemo(['--workers', '-3'], { killAfterMs: 20_000 });
  expectOneLineRefusal(run, 2, /^bank: --workers must be an integer from 1 to 256 \(got "-3"\)$/);
  expect(run.stdout).toBe('');
});

test('--db oracle: one line on stderr, exit 2', async () => {
  const run = await runDemo(['--db', 'oracle'], { killAfterMs: 20_000 });
  expectOneLineRefusal(run, 2, /^bank: --db must be pglite, pg or mysql \(got "oracle"\)$/);
  expect(run.stdout).toBe('');
});

test('DATABASE_URL to a closed port: one line on stderr within seconds, exit 1, no password', async () => {
  const port = await closedPort();
  const pg = await runDemo(['--metrics-port', '0'], {
    env: { DATABASE_URL: `postgres://demo:hunter2secret@127.0.0.1:${port}/test` },
    killAfterMs: 20_000,
  });
  expectOneLineRefusal(pg, 1, new RegExp(`^bank: cannot use the database: pg: cannot connect to 127\\.0\\.0\\.1:${port}/test: .*ECONNREFUSED`));
  expect(pg.elapsedMs).toBeLessThan(10_000);
  expect(pg.stdout + pg.stderr).not.toContain('hunter2secret');

  const mysql = await runDemo(['--metrics-port', '0'], {
    env: { DATABASE_URL: `mysql://demo:hunter2secret@127.0.0.1:${port}/test` },
    killAfterMs: 20_000,
  });
  expectOneLineRefusal(mysql, 1, new RegExp(`^bank: cannot use the database: .*127\\.0\\.0\\.1:${port}/test.*ECONNREFUSED`));
  expect(mysql.elapsedMs).toBeLessThan(10_000);
  expect(mysql.stdout + mysql.stderr).not.toContain('hunter2secret');
}, 30_000);

test('--help documents every flag and exits 0', async () => {
  const run = await runDemo(['--help'], { killAfterMs: 20_000 });
  expect(run.code).toBe(0);
  expect(run.stderr).toBe('');
  for (const flag of ['--db', '--accounts', '--workers', '--duration', '--fail-rate', '--leak-rate', '--slow-rate', '--kill-rate', '--metrics-port', '--serve', '--help', 'DATABASE_URL']) {
    expect(run.stdout).toContain(flag);
  }
});
