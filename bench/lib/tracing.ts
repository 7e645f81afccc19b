/**
 * The OpenTelemetry set-up of the tracing scenario, as a production service has one: the
 * async-hooks context manager registered, an SDK tracer provider with a batch span processor,
 * and an exporter that drops what it is given (the cost measured is leasepool's and the SDK's
 * span making, not a network exporter's).
 */
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';

const dropAll: SpanExporter = {
  export(_spans: ReadableSpan[], done) {
    done({ code: 0 });
  },
  shutdown: () => Promise.resolve(),
};

let provider: BasicTracerProvider | undefined;

/** One tracer provider per process (its context manager registered once). */
export function benchTracing(): BasicTracerProvider {
  if (provider === undefined) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropAll)] });
  }
  return provider;
}
