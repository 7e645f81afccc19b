/**
 * The OpenTelemetry set-up of the tracing scenario, as a production service has one: the
 * async-hooks context manager registered, an SDK tracer provider with a batch span processor,
 * and an exporter that drops what it is given (the cost measured is leasepool's and the SDK's
 * span making, not a network exporter's). Every op of both variants runs in a request's context
 * (a sampled span active, as in a traced service handling a request): the context manager's
 * propagation is the application's cost either way, and only leasepool's option differs.
 */
import { context, trace, type Context } from '@opentelemetry/api';
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

let request: Context | undefined;

/** Run `op` in the context of a (sampled, remote) request span, as a traced service's handler runs. */
export function inRequest<T>(op: () => T): T {
  request ??= trace.setSpan(context.active(), trace.wrapSpanContext({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true }));
  benchTracing();
  return context.with(request, op);
}
