/**
 * Shared by test/pg and test/mysql: a pool nobody closed lets the process exit once its idle
 * connections are closed (shortly after idleTimeoutMs), and at once with allowExitOnIdle.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';

export interface ChildRun {
  readonly code: number | null;
  readonly ms: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function runIdleChild(driver: 'pg' | 'mysql', idleTimeoutMs: number, allowExitOnIdle: boolean): Promise<ChildRun> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, 'fixtures', 'idle-pool-child.ts'), driver, String(idleTimeoutMs), String(allowExitOnIdle)],
      { cwd: path.join(__dirname, '..', '..'), env: process.env, timeout: 25_000 },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, ms: performance.now() - started, stdout, stderr }),
    );
  });
}

export function idleExitTests(driver: 'pg' | 'mysql'): void {
  test('without close(), the process exits soon after idleTimeoutMs closed the idle connection', async () => {
    const quick = await runIdleChild(driver, 300, false);
    expect(quick.stderr).toBe('');
    expect(quick.stdout).toContain('"idle":1');
    expect(quick.code).toBe(0);
    const slow = await runIdleChild(driver, 4_000, false);
    expect(slow.code).toBe(0);
    // Kept alive by the idle connection: at least its idle timeout, and not much more (one eviction
    // period, plus what two child processes' start-up differs by on a loaded 2-core machine).
    expect(slow.ms).toBeGreaterThan(4_000);
    expect(slow.ms - quick.ms).toBeLessThan(4_000 + 3_000);
  }, 40_000);

  test('allowExitOnIdle: the process exits with an idle connection open', async () => {
    const run = await runIdleChild(driver, 60_000, true);
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain('"idle":1');
    expect(run.code).toBe(0);
    expect(run.ms).toBeLessThan(20_000);
  }, 30_000);
}
