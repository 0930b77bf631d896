/** Logs, traces and metrics. */
export { ATTR, SYSTEM } from "./attributes.js";
export { jsonLogger, type Logger, type LogLevel } from "./log.js";
export type { GaugeSource, MemoryPartUse, Metrics } from "./metrics.js";
export { messageContext } from "./otel-observer.js";
export { createTelemetry, endPublishSpan, type Telemetry, type TelemetryOptions } from "./telemetry.js";
export { tracesRequested } from "./tracing.js";
