/**
 * An OpenTelemetry SDK set-up for tests, as an application would wire one: the async-hooks
 * context manager registered globally, a tracer provider with the SDK's in-memory span exporter,
 * a meter provider with the in-memory metric exporter. Spans and metric points are read back
 * as plain values.
 */
import { context, trace, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';

export interface OtelHarness {
  readonly tracerProvider: BasicTracerProvider;
  readonly meterProvider: MeterProvider;
  /** Finished spans so far. */
  spans(): ReadableSpan[];
  /** Finished spans named `name`. */
  named(name: string): ReadableSpan[];
  /** The parent span id of `span` (SDK 2.x keeps it in parentSpanContext). */
  parentOf(span: ReadableSpan): string | undefined;
  /** Collect now; the points of metric `name` whose attributes include `attrs`. */
  points(name: string, attrs?: Record<string, unknown>): Promise<DataPoint<unknown>[]>;
  /** Sum over the matching points: a counter's value, a gauge's, or a histogram's count. */
  value(name: string, attrs?: Record<string, unknown>): Promise<number>;
  /** Run `fn` inside a span of the test's own ("the caller's span"). */
  inSpan<T>(name: string, fn: (span: Span) => Promise<T>): Promise<T>;
  shutdown(): Promise<void>;
}

let contextManager: AsyncLocalStorageContextManager | undefined;

export function otelHarness(): OtelHarness {
  if (contextManager === undefined) {
    contextManager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(contextManager);
  }
  const spanExporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] });
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // The interval never fires within a test: collect() flushes on demand.
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const tracer = tracerProvider.getTracer('test');

  const points = async (name: string, attrs: Record<string, unknown> = {}): Promise<DataPoint<unknown>[]> => {
    metricExporter.reset();
    await reader.forceFlush();
    const out: DataPoint<unknown>[] = [];
    for (const rm of metricExporter.getMetrics()) {
      for (const scope of rm.scopeMetrics) {
        for (const metric of scope.metrics) {
          if (metric.descriptor.name !== name) continue;
          for (const p of metric.dataPoints as DataPoint<unknown>[]) {
            if (Object.entries(attrs).every(([k, v]) => p.attributes[k] === v)) out.push(p);
          }
        }
      }
    }
    return out;
  };
  return {
    tracerProvider,
    meterProvider,
    spans: () => spanExporter.getFinishedSpans(),
    named: (name) => spanExporter.getFinishedSpans().filter((s) => s.name === name),
    parentOf: (span) => span.parentSpanContext?.spanId,
    points,
    async value(name, attrs) {
      let sum = 0;
      for (const p of await points(name, attrs)) sum += typeof p.value === 'number' ? p.value : (p.value as Histogram).count;
      return sum;
    },
    inSpan: (name, fn) =>
      tracer.startActiveSpan(name, async (span) => {
        try {
          return await fn(span);
        } finally {
          span.end();
        }
      }),
    async shutdown() {
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
    },
  };
}

/** The active span's id where this is called (the context the pool handed on). */
export function activeSpanId(): string | undefined {
  return trace.getActiveSpan()?.spanContext().spanId;
}
