import {
  type Attributes,
  type Context,
  context,
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from "@opentelemetry/api";
import { extractTraceContext, injectTraceContext } from "./trace-context.js";

/*
 * OpenTelemetry instrumentation, through @opentelemetry/api only: the tracer provider and
 * context manager the application registered are used (one call does both:
 * `new NodeTracerProvider({ spanProcessors }).register()`); without them everything is a no-op.
 * Trace context travels in the W3C attributes whatever propagator is registered, since that is
 * what the broker reads. Span names and attributes follow the messaging semantic conventions,
 * with the same names as the broker and the other clients (docs/clients.md, "Tracing").
 */

/** The instrumentation scope name of the client's spans. */
export const TRACER_NAME = "@nervebus/client";
const TRACER_VERSION = "0.1.0";

/** Attribute keys used on the client's spans. */
export const SpanAttributes = {
  SERVER_ADDRESS: "server.address",
  SERVER_PORT: "server.port",
  SYSTEM: "messaging.system",
  DESTINATION: "messaging.destination.name",
  SUBSCRIPTION: "messaging.destination.subscription.name",
  CONSUMER_GROUP: "messaging.consumer.group.name",
  OPERATION_TYPE: "messaging.operation.type",
  OPERATION_NAME: "messaging.operation.name",
  MESSAGE_ID: "messaging.message.id",
  BODY_SIZE: "messaging.message.body.size",
  ORDERING_KEY: "messaging.nervebus.message.ordering_key",
  SEQ: "messaging.nervebus.message.seq",
  ATTEMPT: "messaging.nervebus.message.delivery_attempt",
  OUTCOME: "messaging.nervebus.publish.outcome",
  SETTLEMENT: "messaging.nervebus.settlement",
} as const;

/** What a span is while no SDK is registered: nothing is recorded, ending it does nothing. */
const NO_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** The global provider's delegate the cached tracer came from, and that tracer. */
let cached: { delegate: unknown; tracer: Tracer | undefined } | undefined;

/**
 * The client's tracer from the tracer provider the application registered, or undefined while
 * it registered none: the API's stand-in then hands out a new no-op tracer per call, whose
 * spans record nothing, and building their attributes cost the client more CPU per message
 * than the rest of a delivery (clients/ts/bench). Asked per span, so a provider registered
 * after the client was created is used from then on.
 */
function sdkTracer(): Tracer | undefined {
  const provider = trace.getTracerProvider() as TracerProvider & {
    getDelegate?: () => TracerProvider;
    getDelegateTracer?: (name: string, version?: string) => Tracer | undefined;
  };
  const delegate = typeof provider.getDelegate === "function" ? provider.getDelegate() : provider;
  if (cached?.delegate !== delegate) {
    cached = {
      delegate,
      tracer:
        typeof provider.getDelegateTracer === "function"
          ? provider.getDelegateTracer(TRACER_NAME, TRACER_VERSION)
          : provider.getTracer(TRACER_NAME, TRACER_VERSION),
    };
  }
  return cached.tracer;
}

/** `server.address` and `server.port` of a HOST:PORT broker address (empty when it is not one). */
export function serverAttributes(address: string): Attributes {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (m === null || m[1] === "") return {};
  return { [SpanAttributes.SERVER_ADDRESS]: m[1], [SpanAttributes.SERVER_PORT]: Number(m[2]) };
}

/**
 * Starts the producer span of one message ("publish <topic>") and writes its context into
 * `attributes` (traceparent / tracestate). The parent is the trace context already in
 * `attributes` when the caller put one there, else `info.parent` (default: the active context).
 */
export function startPublishSpan(
  topic: string,
  attributes: Record<string, string>,
  info: { messageId: string; orderingKey: string; bodySize: number; server: Attributes; parent?: Context },
): Span {
  const active = info.parent ?? context.active();
  const parent = attributes.traceparent !== undefined ? extractTraceContext(active, attributes) : active;
  const tracer = sdkTracer();
  if (tracer === undefined) {
    // No span, but the message still joins the trace its parent carries, as with a no-op span.
    injectTraceContext(parent, attributes);
    return NO_SPAN;
  }
  const spanAttributes: Attributes = {
    ...info.server,
    [SpanAttributes.SYSTEM]: "nervebus",
    [SpanAttributes.DESTINATION]: topic,
    [SpanAttributes.OPERATION_TYPE]: "send",
    [SpanAttributes.OPERATION_NAME]: "publish",
    [SpanAttributes.BODY_SIZE]: info.bodySize,
  };
  if (info.messageId !== "") spanAttributes[SpanAttributes.MESSAGE_ID] = info.messageId;
  if (info.orderingKey !== "") spanAttributes[SpanAttributes.ORDERING_KEY] = info.orderingKey;
  const span = tracer.startSpan(
    `publish ${topic}`,
    { kind: SpanKind.PRODUCER, attributes: spanAttributes },
    parent,
  );
  injectTraceContext(trace.setSpan(parent, span), attributes);
  return span;
}

/** Information about a delivered message that goes on its consumer span. */
export interface ProcessSpanInfo {
  readonly topic: string;
  readonly subscription: string;
  readonly seq: number;
  readonly attempt: number;
  readonly messageId: string;
  readonly orderingKey: string;
  readonly bodySize: number;
  readonly attributes: Readonly<Record<string, string>>;
  readonly server: Attributes;
}

/**
 * Starts the consumer span of one delivered message ("process <topic>") as a child of the
 * producer's context, read from the message's attributes. Returns the span and the context to
 * run the handler in.
 */
export function startProcessSpan(info: ProcessSpanInfo): { span: Span; context: Context } {
  const parent = extractTraceContext(ROOT_CONTEXT, info.attributes);
  const tracer = sdkTracer();
  // No span: the handler runs in the producer's context, as it would under a no-op span.
  if (tracer === undefined) return { span: NO_SPAN, context: parent };
  const attributes: Attributes = {
    ...info.server,
    [SpanAttributes.SYSTEM]: "nervebus",
    [SpanAttributes.DESTINATION]: info.topic,
    [SpanAttributes.SUBSCRIPTION]: info.subscription,
    [SpanAttributes.CONSUMER_GROUP]: info.subscription,
    [SpanAttributes.OPERATION_TYPE]: "process",
    [SpanAttributes.OPERATION_NAME]: "process",
    [SpanAttributes.SEQ]: info.seq,
    [SpanAttributes.ATTEMPT]: info.attempt,
    [SpanAttributes.BODY_SIZE]: info.bodySize,
  };
  if (info.messageId !== "") attributes[SpanAttributes.MESSAGE_ID] = info.messageId;
  if (info.orderingKey !== "") attributes[SpanAttributes.ORDERING_KEY] = info.orderingKey;
  const span = tracer.startSpan(`process ${info.topic}`, { kind: SpanKind.CONSUMER, attributes }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/** Ends a span, recording `err` (when given) as an exception and an error status. */
export function endSpan(span: Span, err?: unknown): void {
  if (err !== undefined) {
    span.recordException(err instanceof Error ? err : String(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  }
  span.end();
}
