/**
 * Run the dashboard and the alert rules against a real Prometheus, by hand:
 *
 *   npx tsx scripts/prometheus-check.ts              # a real pool (test/dashboard/workload.ts)
 *   npx tsx scripts/prometheus-check.ts --synthetic  # synthetic series, no pool needed
 *   npx tsx scripts/prometheus-check.ts --keep       # then keep Prometheus running (Ctrl-C stops)
 *
 * Prints every panel query and alert rule with what Prometheus returned; exits 1 if a query fails
 * to parse, a panel shows no data, or a rule is unhealthy. Needs prometheus on PATH
 * (scripts/ensure-tools.sh). `--keep` is handy to point a local Grafana at the printed URL and
 * import grafana/leasepool.json.
 */
import { checkRules, explain, showsData, waitForPanels } from '../test/dashboard/check';
import { ALERTS_FILE, loadDashboard, regexLiteral, type Substitution } from '../test/dashboard/model';
import { serveRegistry, type MetricsServer } from '../test/dashboard/metrics-server';
import { startPrometheus } from '../test/dashboard/prometheus';
import { startSynthetic } from '../test/dashboard/synthetic';
import { startWorkload } from '../test/dashboard/workload';

async function main(): Promise<number> {
  const args = new Set(process.argv.slice(2));
  const rateInterval = '15s';
  let target: string;
  let poolName: string;
  let stopSource: () => Promise<void>;
  if (args.has('--synthetic')) {
    const source = startSynthetic();
    const server: MetricsServer = await serveRegistry(source.registry);
    target = server.target;
    poolName = source.pools[0] ?? 'main';
    stopSource = async () => {
      source.stop();
      await server.close();
    };
  } else {
    const w = await startWorkload();
    target = w.target;
    poolName = w.poolName;
    stopSource = async () => {
      await w.stop();
      process.stdout.write(`workload: provoked ${JSON.stringify(Object.fromEntries(w.provoked))}, ${w.unexpected.length} unexpected error(s)\n`);
      for (const e of w.unexpected.slice(0, 5)) process.stdout.write(`  unexpected: ${String(e)}\n`);
    };
  }
  const prom = await startPrometheus({ targets: [target], ruleFiles: [ALERTS_FILE] });
  process.stdout.write(`metrics at http://${target}/metrics, Prometheus at ${prom.url}\n`);
  let failed = 0;
  try {
    const dash = loadDashboard();
    const subs: Substitution[] = [
      { pool: '.*', instance: '.*', rateInterval },
      { pool: regexLiteral(poolName), instance: regexLiteral(target), rateInterval },
    ];
    const started = Date.now();
    const results = await waitForPanels(prom, dash, subs, 60_000);
    process.stdout.write(`\npanels (after ${((Date.now() - started) / 1000).toFixed(1)} s of scraping):\n`);
    subs.forEach((s, i) => {
      process.stdout.write(`  with $pool=${s.pool} $instance=${s.instance} $__rate_interval=${s.rateInterval}\n`);
      for (const c of results[i] ?? []) {
        const ok = showsData(c);
        if (!ok) failed += 1;
        process.stdout.write(`  ${ok ? 'ok  ' : 'FAIL'} ${explain(c)}\n`);
      }
    });
    process.stdout.write('\nalert rules:\n');
    for (const r of await checkRules(prom)) {
      const ok = r.ok && r.rule.health !== 'err';
      if (!ok) failed += 1;
      const firing = (r.rule.alerts ?? []).map((a) => `${a.state} ${JSON.stringify(a.labels)}`).join('; ');
      process.stdout.write(`  ${ok ? 'ok  ' : 'FAIL'} [${r.rule.health}/${r.rule.state ?? ''}] ${explain(r)}${firing ? `\n    alerts: ${firing}` : ''}\n`);
    }
    process.stdout.write(`\n${failed === 0 ? 'all checks passed' : `${failed} check(s) failed`}\n`);
    if (args.has('--keep')) {
      process.stdout.write(`\nPrometheus keeps running at ${prom.url} — Ctrl-C to stop\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
    }
  } finally {
    await prom.stop();
    await stopSource();
  }
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(2);
  },
);
