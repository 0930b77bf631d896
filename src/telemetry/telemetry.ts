import {
  type Context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import type { SpanProcessor } from "@opentelemetry/sdk-trace-base";
import type { BrokerObserver } from "../core/index.js";
import { ATTR, SYSTEM } from "./attributes.js";
import { type GaugeSource, Metrics } from "./metrics.js";
import { messageContext, otelObserver } from "./otel-observer.js";
import { startTracing, TRACER_NAME } from "./tracing.js";

/** Everything the broker reports through: metrics always, spans when tracing is configured. */
export interface Telemetry {
  readonly metrics: Metrics;
  readonly observer: BrokerObserver;
  /** Undefined when tracing is off: no span is ever created then. */
  readonly tracer: Tracer | undefined;
  /** Starts the broker's span for a SendPack (undefined when tracing is off). */
  startPublishSpan(
    topic: string,
    count: number,
    metadataTraceparent: string | undefined,
    /** The first message's attributes as sent; asked for only when tracing. */
    first: () => Record<string, string> | undefined,
  ): Span | undefined;
  shutdown(): Promise<void>;
}

export interface TelemetryOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly storeKind: string;
  readonly gauges: GaugeSource;
  /** Tests: collect spans here instead of exporting them. */
  readonly spanProcessor?: SpanProcessor;
}

/** Sets up metrics and (if configured) tracing. */
export function createTelemetry(options: TelemetryOptions): Telemetry {
  const tracing = startTracing(options.env, options.spanProcessor);
  const tracer = tracing.enabled ? trace.getTracer(TRACER_NAME) : undefined;
  const metrics = new Metrics(options.gauges);
  return {
    metrics,
    tracer,
    observer: otelObserver(metrics, tracer, options.storeKind),
    startPublishSpan(topic, count, metadataTraceparent, first) {
      if (tracer === undefined) return undefined;
      // The producer's context: from the call's metadata, else from the pack's first message.
      const parent: Context =
        metadataTraceparent !== undefined
          ? propagation.extract(ROOT_CONTEXT, { traceparent: metadataTraceparent })
          : messageContext(first());
      return tracer.startSpan(
        `publish ${topic}`,
        {
          kind: SpanKind.SERVER,
          attributes: {
            [ATTR.system]: SYSTEM,
            [ATTR.destination]: topic,
            [ATTR.operationType]: "send",
            [ATTR.operationName]: "publish",
            [ATTR.batchCount]: count,
          },
        },
        parent,
      );
    },
    async shutdown() {
      await metrics.shutdown();
      await tracing.shutdown();
    },
  };
}

/** Ends a publish span with its outcome. */
export function endPublishSpan(
  span: Span | undefined,
  result: { firstSeq: number; lastSeq: number } | Error,
): void {
  if (span === undefined) return;
  if (result instanceof Error) {
    span.recordException(result);
    span.setStatus({ code: SpanStatusCode.ERROR, message: result.message });
  } else {
    span.setAttributes({ [ATTR.firstSeq]: result.firstSeq, [ATTR.lastSeq]: result.lastSeq });
  }
  span.end();
}
