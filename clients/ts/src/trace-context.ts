import {
  type Context,
  createTraceState,
  isSpanContextValid,
  type SpanContext,
  trace,
} from "@opentelemetry/api";

/*
 * The W3C Trace Context codec of message attributes (`traceparent`, `tracestate`). The broker
 * reads and writes exactly these, so the client uses them whatever propagator the application
 * registered globally (as the Go and Python clients do): tracing then needs nothing but a
 * tracer provider.
 */

/** version-traceid-parentid-flags; a later version may append fields after a dash. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** Writes the span context of `ctx` into `attributes`; leaves them alone when it has none. */
export function injectTraceContext(ctx: Context, attributes: Record<string, string>): void {
  const sc = trace.getSpanContext(ctx);
  if (sc === undefined || !isSpanContextValid(sc)) return;
  attributes.traceparent = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
  const state = sc.traceState?.serialize() ?? "";
  if (state === "") delete attributes.tracestate;
  else attributes.tracestate = state;
}

/**
 * The remote span context carried by `attributes`, set in `base`; `base` itself when they carry
 * none or a malformed one.
 */
export function extractTraceContext(base: Context, attributes: Readonly<Record<string, string>>): Context {
  const m = TRACEPARENT.exec(attributes.traceparent ?? "");
  if (m === null || m[1] === "ff" || (m[1] === "00" && m[5] !== undefined)) return base;
  const sc: SpanContext = {
    traceId: m[2]!,
    spanId: m[3]!,
    traceFlags: Number.parseInt(m[4]!, 16),
    isRemote: true,
  };
  if (!isSpanContextValid(sc)) return base;
  const state = attributes.tracestate;
  if (state !== undefined && state !== "") sc.traceState = createTraceState(state);
  return trace.setSpanContext(base, sc);
}
