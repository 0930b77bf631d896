import * as grpc from "@grpc/grpc-js";

/** A status as grpc-js's server calls take it. */
type Status = Parameters<grpc.ServerInterceptingCallInterface["sendStatus"]>[0];

/**
 * grpc-js's own refusals of a malformed request, which it answers INTERNAL before any
 * interceptor's responder or handler sees the call (issue 12 item 6): each rewritten to the
 * INVALID_ARGUMENT it is, with a message that says what was wrong. Matched on grpc-js 1.14's
 * wording; test/integration/grpc-fuzz.test.ts sends each and fails if the wording changes.
 */
const REWRITES: readonly { match: RegExp; details: (m: RegExpExecArray) => string }[] = [
  {
    // A grpc-timeout header that is not 1–8 digits and a unit.
    match: /^Invalid grpc-timeout value "(.*)"$/s,
    details: (m) =>
      `grpc-timeout header ${JSON.stringify(m[1])} is not a timeout: 1–8 digits and a unit (H, M, S, m, u, n), e.g. "500m"`,
  },
  {
    // A message flagged compressed whose bytes do not inflate with its grpc-encoding.
    match: /^Failed to decompress message$/,
    details: () =>
      "request message is flagged compressed but does not decompress with its grpc-encoding (gzip or deflate): corrupt or not compressed",
  },
  {
    // A deserializer that threw (the broker's own do not; kept for any that might).
    match: /^Error deserializing request/,
    details: () => "request message could not be decoded",
  },
];

/** The INVALID_ARGUMENT form of a grpc-js INTERNAL refusal, or the status as it is. */
export function rewriteTransportError(status: Status): Status {
  if (status.code !== grpc.status.INTERNAL) return status;
  for (const r of REWRITES) {
    const m = r.match.exec(status.details ?? "");
    if (m !== null) return { ...status, code: grpc.status.INVALID_ARGUMENT, details: r.details(m) };
  }
  return status;
}

/** Marks a base call whose statuses go through rewriteTransportError (see the interceptor). */
const REWRITES_STATUS = Symbol("nervebus.rewritesStatus");
/** Set on the prototype of grpc-js's base call once its sendStatus is wrapped. */
const WRAPPED = Symbol("nervebus.sendStatusWrapped");

/** grpc-js's base server call, as far as the wrapper uses it. */
interface BaseCall {
  sendStatus(status: Status): void;
  readonly stream?: { resume?: () => void };
  [REWRITES_STATUS]?: true;
}

/**
 * Wraps the sendStatus of grpc-js's base call class once, on its prototype: a call marked
 * REWRITES_STATUS has its status rewritten (rewriteTransportError) and the rest of its
 * request body let through (below); other calls are left as they are.
 *
 * Per call, as an own property (a closure holding the call), the wrapper kept every finished
 * call's whole object graph (HTTP/2 stream, grpc-js call, interceptors, decoded request) alive
 * through young-generation collections until the next full one: each SendPack's ~6 KB of
 * objects was copied and promoted, most of what the broker promoted at 10k msg/s
 * (BENCHMARKS.md, "Round 2, fourth session: what survives a scavenge"). A mark on the call (no
 * closure) and one shared function do not.
 */
function wrapSendStatus(proto: BaseCall): void {
  if (Object.hasOwn(proto, WRAPPED)) return;
  const original = proto.sendStatus;
  Object.defineProperty(proto, WRAPPED, { value: true });
  proto.sendStatus = function (this: BaseCall, status: Status) {
    if (this[REWRITES_STATUS] !== true) return original.call(this, status);
    original.call(this, rewriteTransportError(status));
    // grpc-js holds the HTTP/2 stream paused until a handler reads. A call answered before its
    // body was read (admission refused it at its headers) would keep that body unread in the
    // stream, and unread data holds the connection's flow-control window: a few refused packs
    // stalled every admitted pack on the connection until its deadline. Once answered, the
    // body is let through, and grpc-js drops it (the call is over).
    this.stream?.resume?.();
  };
}

/**
 * The server's first interceptor: gives grpc-js's base call a sendStatus that rewrites its own
 * refusals (rewriteTransportError) and discards the rest of an answered call's request body.
 * grpc-js calls `this.sendStatus` on the base call for these, past every interceptor's
 * responder, so the only place to see them without forking grpc-js is the base call object
 * itself, which grpc-js 1.14 hands to the first interceptor (its class's sendStatus is wrapped
 * once, wrapSendStatus). The call is returned as it is, so the next interceptor still gets the
 * base call (CallDrain needs it).
 */
export const transportErrorInterceptor: grpc.ServerInterceptor = (_method, call) => {
  const base = call as unknown as BaseCall;
  const proto = Object.getPrototypeOf(base) as BaseCall | null;
  if (proto !== null && typeof proto.sendStatus === "function") {
    wrapSendStatus(proto);
    base[REWRITES_STATUS] = true;
  }
  // The type wants a ServerInterceptingCall; grpc-js only uses the interface it implements.
  return call as grpc.ServerInterceptingCall;
};
