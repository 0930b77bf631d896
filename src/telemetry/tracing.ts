import { trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

/** The tracer the broker's spans come from. */
export const TRACER_NAME = "nervebus";

export interface Tracing {
  /** False when no exporter is configured: the broker then creates no spans at all. */
  readonly enabled: boolean;
  shutdown(): Promise<void>;
}

/** Whether the standard OTEL_* variables ask for traces. */
export function tracesRequested(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED === "true") return false;
  const exporter = env.OTEL_TRACES_EXPORTER;
  if (exporter !== undefined) return exporter !== "none";
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Starts tracing from the standard OpenTelemetry environment: OTEL_EXPORTER_OTLP_ENDPOINT (or
 * _TRACES_ENDPOINT), OTEL_TRACES_EXPORTER=otlp|none, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER and
 * the rest are read by the SDK itself. Nothing is set up (and nothing costs) when none is given.
 * Tests pass their own span processor instead.
 */
export function startTracing(env: NodeJS.ProcessEnv, processor?: SpanProcessor): Tracing {
  if (processor === undefined && !tracesRequested(env)) return { enabled: false, shutdown: async () => {} };
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": env.OTEL_SERVICE_NAME ?? "nervebus" }),
    spanProcessors: [processor ?? new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  // Registers the W3C trace-context propagator and the AsyncLocalStorage context manager.
  provider.register();
  return {
    enabled: true,
    async shutdown() {
      await provider.shutdown();
      trace.disable();
    },
  };
}
