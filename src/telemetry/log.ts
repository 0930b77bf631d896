import { trace } from "@opentelemetry/api";
import { pino } from "pino";

/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** A structured logger: one JSON object per line. Payloads are never passed to it. */
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/**
 * JSON lines through pino (to stderr, or `destination`), with `trace_id` and `span_id` added
 * when a span is active, so a log line can be found from a trace and back.
 */
export function jsonLogger(level: LogLevel, destination: NodeJS.WritableStream = process.stderr): Logger {
  const base = pino(
    {
      level,
      base: { service: "nervebus" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      messageKey: "msg",
    },
    destination as pino.DestinationStream,
  );
  return (lvl, msg, fields) => {
    if (!base.isLevelEnabled(lvl)) return;
    const span = trace.getActiveSpan()?.spanContext();
    const withTrace =
      span === undefined ? fields : { ...fields, trace_id: span.traceId, span_id: span.spanId };
    base[lvl](withTrace ?? {}, msg);
  };
}
