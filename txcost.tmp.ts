import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createPool } from './src';
import { fakeAdapter } from './test/helpers/fake-adapter';
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor({ export: (_s, d) => d({ code: 0 }), shutdown: async () => {} })] });
const mode = process.argv[2] ?? 'off';
async function run(traced: boolean, kind: string, n: number): Promise<number> {
  const pool = createPool(fakeAdapter(), { max: 10, metrics: false, ...(traced ? { openTelemetry: { tracerProvider: provider, metrics: false } } : {}) });
  let left = n;
  const t0 = process.cpuUsage();
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (left-- > 0) {
      if (kind === 'tx') await pool.withTx((c) => c.query('SELECT 1'));
      else await pool.withLease((c) => c.query('SELECT 1'));
    }
  }));
  const u = process.cpuUsage(t0);
  await pool.close();
  return (u.user + u.system) / n;
}
(async () => {
  for (const kind of ['lease', 'tx']) for (let r = 0; r < 3; r++) {
    const off = await run(false, kind, 50000); const on = await run(true, kind, 50000);
    console.log(kind, 'off', off.toFixed(2), 'on', on.toFixed(2), 'µs/op');
  }
})();
