/*
 * The TypeScript end of the cross-language test: consumes a topic with the repository's
 * TypeScript client (the built workspace package @nervebus/client) and prints one JSON line per
 * delivery on stdout — payload, attributes, seq, and the trace ids seen: the one the broker
 * reports, the one in `traceparent`, and the one of the consumer span the client opens around
 * the handler. Exits once -n distinct messages were handled (and acked). With --spans FILE it
 * also writes every span the client made (name, kind, ids, attributes) to FILE as JSON lines.
 *
 *   node test/cross-language/dist/consume.js --addr 127.0.0.1:7070 --topic xlang.out -n 50
 *
 * Built by test/cross-language/tsconfig.json (into test/cross-language/dist, gitignored).
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { SpanKind, trace } from "@opentelemetry/api";
import {
  AlwaysOnSampler,
  NodeTracerProvider,
  type ReadableSpan,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-node";

/*
 * The parts of @nervebus/client this program uses. The package is imported at run time by a
 * specifier TypeScript does not resolve, because the repository's own `tsc -p .` also compiles
 * this file (its include covers test/**) and runs before clients/ts is built: a static import
 * would fail there on a fresh clone.
 */
interface ReceivedMessage {
  readonly seq: number;
  readonly data: Uint8Array;
  readonly attributes: Readonly<Record<string, string>>;
  readonly orderingKey: string;
  readonly messageId: string;
  readonly attempt: number;
  readonly traceId: string;
}
interface Subscriber {
  readonly ready: Promise<void>;
  readonly done: Promise<void>;
  close(options?: { timeoutMs?: number }): Promise<void>;
}
interface NerveBusClient {
  readonly admin: {
    createTopic(name: string): Promise<unknown>;
    createSubscription(
      topic: string,
      name: string,
      options: { ordering: boolean; start: "earliest" },
    ): Promise<unknown>;
  };
  subscribe(
    topic: string,
    subscription: string,
    handler: (message: ReceivedMessage) => void | Promise<void>,
    options: { start: "earliest"; consumerName: string; closeTimeoutMs: number },
  ): Subscriber;
  close(): Promise<void>;
}
interface ClientModule {
  readonly NerveBusClient: new (address: string) => NerveBusClient;
  readonly StatusCode: { readonly ALREADY_EXISTS: number };
}

const { values: args } = parseArgs({
  options: {
    addr: { type: "string" },
    topic: { type: "string", default: "xlang.out" },
    subscription: { type: "string", default: "xlang-ts-consumer" },
    n: { type: "string", short: "n", default: "50" },
    "timeout-ms": { type: "string", default: "60000" },
    spans: { type: "string" },
  },
});
if (args.addr === undefined) throw new Error("--addr HOST:PORT is required");
const want = Number(args.n);
const timeoutMs = Number(args["timeout-ms"]);

/** Keeps the client's ended spans, for --spans. */
const clientSpans: ReadableSpan[] = [];
const recorder: SpanProcessor = {
  onStart() {},
  onEnd(span) {
    if (span.instrumentationScope.name === "@nervebus/client") clientSpans.push(span);
  },
  forceFlush: async () => {},
  shutdown: async () => {},
};

// The one setup call the client's README documents: register() installs the provider and the
// context manager (AsyncLocalStorage), so that the consumer span is the active span inside the
// handler. The client reads the traceparent the Python publisher wrote by itself.
const provider = new NodeTracerProvider({ sampler: new AlwaysOnSampler(), spanProcessors: [recorder] });
provider.register();

const clientModuleName: string = "@nervebus/client";
const { NerveBusClient, StatusCode } = (await import(clientModuleName)) as ClientModule;

/** Awaits an admin create call, ignoring ALREADY_EXISTS. */
async function createIfMissing(call: Promise<unknown>): Promise<void> {
  try {
    await call;
  } catch (err) {
    if ((err as { code?: number }).code !== StatusCode.ALREADY_EXISTS) throw err;
  }
}

const seen = new Set<number>();
const client = new NerveBusClient(args.addr);
const timer = setTimeout(() => {
  console.error(`consume: timed out after ${timeoutMs} ms with ${seen.size} of ${want} messages`);
  process.exit(1);
}, timeoutMs);

await createIfMissing(client.admin.createTopic(args.topic));
await createIfMissing(
  client.admin.createSubscription(args.topic, args.subscription, { ordering: true, start: "earliest" }),
);

const subscriber = client.subscribe(
  args.topic,
  args.subscription,
  (msg) => {
    // Printed as the handler starts, so the lines are in delivery order.
    const span = trace.getActiveSpan() as unknown as ReadableSpan | undefined;
    const consumer = span?.spanContext();
    process.stdout.write(
      `${JSON.stringify({
        seq: msg.seq,
        attempt: msg.attempt,
        message_id: msg.messageId,
        ordering_key: msg.orderingKey,
        payload_b64: Buffer.from(msg.data).toString("base64"),
        attributes: msg.attributes,
        trace_id: msg.traceId,
        traceparent: msg.attributes.traceparent ?? "",
        consumer_trace_id: consumer?.traceId ?? "",
        consumer_span_id: consumer?.spanId ?? "",
        consumer_parent_span_id: span?.parentSpanContext?.spanId ?? "",
      })}\n`,
    );
    seen.add(msg.seq);
    if (seen.size === want) void subscriber.close(); // acks this message once the handler returns
  },
  { start: "earliest", consumerName: "xlang-ts-consumer", closeTimeoutMs: 5000 },
);

await subscriber.done;
clearTimeout(timer);
await client.close();
await provider.shutdown();
if (args.spans !== undefined) {
  const lines = clientSpans.map((s) =>
    JSON.stringify({
      name: s.name,
      kind: SpanKind[s.kind].toLowerCase(),
      trace_id: s.spanContext().traceId,
      span_id: s.spanContext().spanId,
      parent_span_id: s.parentSpanContext?.spanId ?? "",
      attributes: s.attributes,
    }),
  );
  writeFileSync(args.spans, lines.map((l) => `${l}\n`).join(""));
}
if (seen.size < want) {
  console.error(`consume: the subscriber stopped with ${seen.size} of ${want} messages`);
  process.exitCode = 1;
}
