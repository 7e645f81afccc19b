import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createPool } from './src';
import { pgAdapter } from './adapters/pg';
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor({ export: (_s, d) => d({ code: 0 }), shutdown: async () => {} })] });
const URL = 'postgres://postgres@127.0.0.1:5432/test';
const noopSpan = { retry() {}, committed() {} };
async function run(mode: string, n: number): Promise<number> {
  const pool = createPool(pgAdapter(URL), { max: 10, metrics: false, ...(mode !== 'off' ? { openTelemetry: { tracerProvider: provider, metrics: false } } : {}) });
  const real = (pool as any).tracer;
  if (mode === 'stub') (pool as any).tracer = { acquireWaiting() {}, idleAcquire: undefined, transaction: (_b: any, _d: any, run: any) => run(noopSpan) };
  if (mode === 'ctx') (pool as any).tracer = { acquireWaiting() {}, idleAcquire: undefined, transaction: (_b: any, _d: any, run: any) => context.with(trace.setSpan(context.active(), trace.wrapSpanContext({ traceId: '1'.repeat(32), spanId: '1'.repeat(16), traceFlags: 1 })), run, undefined, noopSpan) };
  if (mode === 'span') (pool as any).tracer = { acquireWaiting() {}, idleAcquire: undefined, transaction: (b: any, d: any, run: any) => real.transaction(b, d, run) };
  let left = n;
  const t0 = process.cpuUsage(); const w0 = performance.now();
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (left-- > 0) await pool.withTx((c) => c.query('SELECT 1'));
  }));
  const u = process.cpuUsage(t0); const w = performance.now() - w0;
  await pool.close();
  return [(u.user + u.system) / n, w * 1000 / n] as any;
}
(async () => {
  for (let r = 0; r < 3; r++) for (const m of ['off', 'stub', 'ctx', 'span', 'full']) {
    const [cpu, wall] = await run(m, 5000) as any;
    console.log(r, m.padEnd(5), 'cpu µs/op', cpu.toFixed(1), 'wall µs/op', wall.toFixed(1));
  }
})();
