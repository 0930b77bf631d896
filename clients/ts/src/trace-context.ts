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

/** Whether s[from, to) is lowercase hex (what traceparent allows). */
function isHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** Whether s[from, to) is all "0". */
function isZeros(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (s.charCodeAt(i) !== 48) return false;
  return true;
}

/** Whether s[from…] holds a line terminator (which a later version's fields may not). */
function hasLineTerminator(s: string, from: number): boolean {
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 10 || c === 13 || c === 0x2028 || c === 0x2029) return true;
  }
  return false;
}

/**
 * The span context of a W3C traceparent (version-traceid-parentid-flags; a later version may
 * append fields after a dash), or undefined when it is malformed or names the invalid trace or
 * span. Read char by char: this runs for every delivered message (clients/ts/bench).
 */
export function parseTraceparent(tp: string): SpanContext | undefined {
  if (tp.length < 55) return undefined;
  if (tp.charCodeAt(2) !== 45 || tp.charCodeAt(35) !== 45 || tp.charCodeAt(52) !== 45) return undefined;
  if (!isHex(tp, 0, 2) || !isHex(tp, 3, 35) || !isHex(tp, 36, 52) || !isHex(tp, 53, 55)) return undefined;
  const version = tp.slice(0, 2);
  if (version === "ff") return undefined;
  if (tp.length > 55 && (version === "00" || tp.charCodeAt(55) !== 45 || hasLineTerminator(tp, 56)))
    return undefined;
  if (isZeros(tp, 3, 35) || isZeros(tp, 36, 52)) return undefined;
  return {
    traceId: tp.slice(3, 35),
    spanId: tp.slice(36, 52),
    traceFlags: Number.parseInt(tp.slice(53, 55), 16),
    isRemote: true,
  };
}

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
  const tp = attributes.traceparent;
  const sc = tp === undefined ? undefined : parseTraceparent(tp);
  if (sc === undefined) return base;
  const state = attributes.tracestate;
  if (state !== undefined && state !== "") sc.traceState = createTraceState(state);
  return trace.setSpanContext(base, sc);
}
