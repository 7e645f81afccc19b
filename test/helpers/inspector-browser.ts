/**
 * The lease inspector in a real browser: headless Chromium (Debian's `chromium`, installed by
 * scripts/ensure-tools.sh from jest's globalSetup) driven by playwright-core, against a real
 * database pool. Shared by test/pg/ and test/mysql/: the scenario is the same, only the SQL differs.
 *
 * The scenario: a transaction (with a savepoint) keeps running the database's sleep until the test
 * lets it finish, while a second lease is leaked mid-statement. The page must show the first lease
 * with its statement, stack, backend id and savepoint depth, its age ticking in the page itself
 * (polling paused), then drop the row once the transaction is released; the leaked lease must show
 * as leaked, and its reclaim button (the page was opened with the token) must end it. A screenshot
 * goes to .tmp/ for people to look at.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { serveInspector, type InspectorServer, type Lease, type Pool } from '../../src';

export const CHROMIUM = '/usr/bin/chromium';
export const REPO_ROOT = path.resolve(__dirname, '../..');
export const SCREENSHOT_DIR = path.join(REPO_ROOT, '.tmp');

/** Launch headless Chromium; fails with how to install it when it is missing. */
export async function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/ensure-tools.sh (installs the Debian 'chromium' package)`);
  // --no-sandbox: the tests run as root here, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/** Poll `check` until it returns true; fail with `what` after `timeoutMs`. */
export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}${last === undefined ? '' : ` (last error: ${String(last)})`}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Milliseconds from the page's duration text ("850 ms", "1.3 s", "2 min 5 s"). */
export function parseDuration(text: string): number {
  const t = text.trim();
  let m = /^(\d+) ms$/.exec(t);
  if (m) return Number(m[1]);
  m = /^(\d+(?:\.\d+)?) s$/.exec(t);
  if (m) return Number(m[1]) * 1000;
  m = /^(\d+) min (\d+) s$/.exec(t);
  if (m) return (Number(m[1]) * 60 + Number(m[2])) * 1000;
  throw new Error(`not a duration: ${JSON.stringify(text)}`);
}

export interface BrowserScenario<C extends object> {
  /** A pool with leak detection on (`leakStacksPerSecond: Infinity`), at least 2 connections. */
  readonly pool: Pool<C>;
  /** A statement that sleeps `seconds` (`SELECT pg_sleep(…)` / `SELECT SLEEP(…)`), with one parameter placeholder whose value must never show. */
  sleepSql(seconds: number): { sql: string; params: unknown[] };
  /** The backend id of the lease's connection, as the server reports it. */
  backendId(conn: C): Promise<number>;
  /** Run a statement with parameters on a leased connection. */
  query(conn: C, sql: string, params: unknown[]): Promise<unknown>;
  /** Strings that must appear nowhere on the page or in the JSON (a password, parameter values). */
  readonly secrets: readonly string[];
  /** File name of the screenshot under .tmp/. */
  readonly screenshot: string;
  readonly leakDetectionMs: number;
}

const TOKEN = 'browser-test-token-0123456789abcdef';

/** Run the scenario; resolves to the screenshot's path. */
export async function runBrowserScenario<C extends object>(s: BrowserScenario<C>): Promise<string> {
  const { pool } = s;
  let browser: Browser | undefined;
  let server: InspectorServer | undefined;
  let stop = false;
  let holder: Promise<void> | undefined;
  let leaked: Lease<C> | undefined;
  let leakedQuery: Promise<unknown> | undefined;
  try {
    server = await serveInspector([pool], { port: 0, token: TOKEN, allowReclaim: true, pollIntervalMs: 200 });
    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('dialog', (dialog) => void dialog.accept());
    await page.goto(`${server.url}?token=${TOKEN}`);
    await until('the page is live', async () => ((await page.textContent('#status')) ?? '').startsWith('live'));
    // The token left the address bar.
    expect(page.url()).toBe(server.url);

    // 1. A transaction with a savepoint, its statement running (a sleep, again and again until told to stop).
    let txLeaseId = 0;
    let pid = 0;
    let ready!: () => void;
    const started = new Promise<void>((resolve) => (ready = resolve));
    holder = pool.withTx(async (conn, tx) => {
      txLeaseId = tx.lease.id;
      pid = await s.backendId(conn);
      await pool.withTx(async (inner) => {
        ready();
        const { sql, params } = s.sleepSql(0.2);
        while (!stop) await s.query(inner, sql, params);
      });
    });
    await started;
    const txRow = page.locator(`tr.lease[data-lease-id="${txLeaseId}"]`);
    await txRow.waitFor({ state: 'visible', timeout: 10_000 });
    await until('the transaction row shows its running statement', async () => ((await txRow.locator('.sql-text').textContent({ timeout: 500 })) ?? '').includes(s.sleepSql(0.2).sql));
    expect(await txRow.locator('.state').textContent()).toMatch(/running|in transaction/);
    expect(await txRow.locator('.savepoints').textContent()).toBe('1');
    expect(await txRow.locator('.tx').textContent()).toBe('open');
    expect(await txRow.locator('.backend').textContent()).toBe(String(pid));
    expect(await txRow.locator('.stack pre').textContent()).toContain(path.basename(expect.getState().testPath ?? 'inspector-browser.test.ts'));

    // Its age ticks in the page itself: with polling paused, the text still moves forward.
    await page.check('#pause');
    const ageBefore = parseDuration((await txRow.locator('.age').textContent()) ?? '');
    await until('the age ticks with polling paused', async () => parseDuration((await txRow.locator('.age').textContent()) ?? '') > ageBefore + 150);
    await page.uncheck('#pause');

    // 2. A leaked lease, mid-statement.
    leaked = await pool.acquire();
    const leakedSleep = s.sleepSql(30);
    leakedQuery = s.query(leaked.conn, leakedSleep.sql, leakedSleep.params).catch((err: unknown) => err);
    const leakedRow = page.locator(`tr.lease[data-lease-id="${leaked.id}"]`);
    await leakedRow.locator('.leaked').waitFor({ state: 'visible', timeout: 10_000 + s.leakDetectionMs });
    await until('the leaked lease shows its statement', async () => ((await leakedRow.locator('.sql-text').textContent({ timeout: 500 })) ?? '').includes(leakedSleep.sql));
    await until('the leak report is listed', async () => (await page.locator('tr.report-leak').count()) > 0);

    fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const shot = path.join(SCREENSHOT_DIR, s.screenshot);
    await page.screenshot({ path: shot, fullPage: true });

    // Nothing secret on the page or in the JSON.
    const html = await page.content();
    const json = await (await fetch(server.jsonUrl, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    for (const secret of s.secrets) {
      expect(html).not.toContain(secret);
      expect(json).not.toContain(secret);
    }

    // 3. The transaction ends: its row goes.
    stop = true;
    await holder;
    holder = undefined;
    await txRow.waitFor({ state: 'detached', timeout: 10_000 });

    // 4. Reclaim the leaked lease from the page (with the token): its row goes, the lease is revoked.
    // Polling paused first: a re-render between mouse down and up would swallow the click. The
    // page fetches once after the reclaim answers.
    await page.check('#pause');
    await leakedRow.locator('button.reclaim').click();
    await leakedRow.waitFor({ state: 'detached', timeout: 10_000 });
    expect(leaked.state).toBe('revoked');
    await leakedQuery;
    await until('the reclaim is listed', async () => ((await page.locator('tr.report-reclaim').first().textContent({ timeout: 500 })) ?? '').includes('leak_reclaimed'));
    expect(await page.locator('tr.lease').count()).toBe(0);
    await page.uncheck('#pause');
    await until('the page is live again', async () => ((await page.textContent('#status')) ?? '').startsWith('live'));
    expect(pageErrors).toEqual([]);
    return shot;
  } finally {
    stop = true;
    await holder?.catch(() => undefined);
    if (leaked !== undefined && leaked.state === 'active') await leaked.release().catch(() => undefined);
    await leakedQuery;
    await browser?.close();
    await server?.close();
  }
}
