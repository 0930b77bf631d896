import { create, toJson } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  GetMessageRequestSchema,
  ListMessagesRequestSchema,
  type MessageDelivery,
  MessageDelivery_State,
  type StoredMessage,
  StoredMessageSchema,
} from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { unary } from "../api/index.js";
import { NerveBusError } from "../core/index.js";
import { parseClientArgs, requiredFlag, wholeNumberFlag } from "./client-args.js";
import { connect, describeGrpcError } from "./connect.js";

function wholeNumber(flag: string, value: string | undefined): number {
  return value === undefined ? 0 : wholeNumberFlag(flag, value);
}

function timeFlag(flag: string, value: string | undefined) {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms))
    throw new NerveBusError(
      "invalid_argument",
      `--${flag}: expected an ISO time like 2026-12-06T10:00:00Z, got ${JSON.stringify(value)}`,
    );
  return timestampFromMs(ms);
}

function attributesOf(pairs: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf("=");
    if (eq <= 0)
      throw new NerveBusError("invalid_argument", `--attr: expected KEY=VALUE, got ${JSON.stringify(pair)}`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

const STATE_TEXT: Record<MessageDelivery_State, string> = {
  [MessageDelivery_State.UNSPECIFIED]: "unknown",
  [MessageDelivery_State.NOT_DELIVERED]: "not delivered",
  [MessageDelivery_State.LEASED]: "leased",
  [MessageDelivery_State.WAITING_REDELIVERY]: "waiting for redelivery",
  [MessageDelivery_State.ACKED]: "acked",
  [MessageDelivery_State.HELD]: "held behind its ordering key",
  [MessageDelivery_State.DEAD_LETTERING]: "being dead-lettered",
  [MessageDelivery_State.DEAD_LETTERED]: "dead-lettered",
};

const iso = (t: { seconds: bigint; nanos: number } | undefined) =>
  t === undefined ? "" : new Date(timestampMs(t as never)).toISOString();

/** One line about one subscription's state of a message. */
function deliveryLine(d: MessageDelivery): string {
  let line = `${d.subscription}: ${STATE_TEXT[d.state]}`;
  if (d.attempts > 0) line += `, ${d.attempts} attempt${d.attempts === 1 ? "" : "s"}`;
  if (d.state === MessageDelivery_State.LEASED) line += `, to ${d.consumer} until ${iso(d.leaseDeadline)}`;
  if (d.state === MessageDelivery_State.WAITING_REDELIVERY) line += `, again at ${iso(d.notBefore)}`;
  if (d.state === MessageDelivery_State.DEAD_LETTERED)
    line += d.deadLetterTopic === "" ? ", dropped (no dead-letter topic)" : ` to ${d.deadLetterTopic}`;
  return line;
}

/** A message as one JSON object: the payload as UTF-8 text, as `tail --json` prints it. */
function jsonOf(m: StoredMessage): unknown {
  const json = toJson(StoredMessageSchema, m) as { message?: Record<string, unknown> };
  if (json.message !== undefined) json.message.data = new TextDecoder().decode(m.message?.data);
  return json;
}

async function call<R>(what: string, run: () => Promise<R>): Promise<R> {
  try {
    return await run();
  } catch (err) {
    throw new NerveBusError("unavailable", `${what}: ${describeGrpcError(err)}`);
  }
}

/**
 * `nervebus messages --topic T [filters]`: one page of a topic's stored messages (nothing is
 * consumed), one line each (`seq<TAB>publish time<TAB>payload`, or JSON with --json); when more
 * remain, a last line on stderr says which --from-seq goes on.
 */
export async function messagesCommand(args: string[]): Promise<number> {
  const v = parseClientArgs(args, {
    topic: { type: "string" },
    "from-seq": { type: "string" },
    "to-seq": { type: "string" },
    since: { type: "string" },
    until: { type: "string" },
    "ordering-key": { type: "string" },
    "message-id": { type: "string" },
    "trace-id": { type: "string" },
    attr: { type: "string", multiple: true },
    limit: { type: "string" },
    "scan-limit": { type: "string" },
    deliveries: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  });
  const topic = requiredFlag(v.topic, "topic");
  const request = create(ListMessagesRequestSchema, {
    topic,
    fromSeq: BigInt(wholeNumber("from-seq", v["from-seq"])),
    toSeq: BigInt(wholeNumber("to-seq", v["to-seq"])),
    fromTime: timeFlag("since", v.since),
    toTime: timeFlag("until", v.until),
    orderingKey: v["ordering-key"] ?? "",
    messageId: v["message-id"] ?? "",
    traceId: v["trace-id"] ?? "",
    attributes: attributesOf(v.attr),
    pageSize: wholeNumber("limit", v.limit),
    scanLimit: wholeNumber("scan-limit", v["scan-limit"]),
    includeDeliveries: v.deliveries,
  });
  const client = await connect(v);
  try {
    const page = await call(`messages of ${topic}`, () =>
      unary(client.admin.listMessages.bind(client.admin), request, { deadline: Date.now() + 60_000 }),
    );
    const decoder = new TextDecoder();
    for (const m of page.messages) {
      const d = m.message!;
      if (v.json) {
        process.stdout.write(`${JSON.stringify(jsonOf(m))}\n`);
        continue;
      }
      process.stdout.write(`${d.seq}\t${iso(d.publishTime)}\t${decoder.decode(d.data)}\n`);
      for (const x of m.deliveries) process.stdout.write(`\t${deliveryLine(x)}\n`);
    }
    if (page.nextSeq > 0n)
      process.stderr.write(
        `more: examined through seq ${page.scannedThrough}; go on with --from-seq ${page.nextSeq}\n`,
      );
    return 0;
  } finally {
    client.close();
  }
}

/**
 * `nervebus message --topic T --seq N`: one stored message (payload, attributes, keys, trace id)
 * and its state on each subscription, readable or as JSON (--json); no SQL needed.
 */
export async function messageCommand(args: string[]): Promise<number> {
  const v = parseClientArgs(args, {
    topic: { type: "string" },
    seq: { type: "string" },
    json: { type: "boolean", default: false },
  });
  const topic = requiredFlag(v.topic, "topic");
  const seq = wholeNumber("seq", requiredFlag(v.seq, "seq"));
  if (seq < 1) throw new NerveBusError("invalid_argument", "--seq: must be ≥ 1");
  const client = await connect(v);
  try {
    const r = await call(`message ${seq} of ${topic}`, () =>
      unary(
        client.admin.getMessage.bind(client.admin),
        create(GetMessageRequestSchema, { topic, seq: BigInt(seq) }),
        {
          deadline: Date.now() + 30_000,
        },
      ),
    );
    const m = r.message!;
    if (v.json) {
      process.stdout.write(`${JSON.stringify(jsonOf(m), null, 2)}\n`);
      return 0;
    }
    const d = m.message!;
    const lines = [
      `seq:          ${d.seq}`,
      `published:    ${iso(d.publishTime)}`,
      `trace id:     ${d.traceId}`,
      `ordering key: ${d.orderingKey}`,
      `message id:   ${d.messageId}`,
      ...Object.entries(d.attributes)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, val]) => `attribute:    ${k}=${val}`),
      `data:         ${new TextDecoder().decode(d.data)} (${d.data.byteLength} bytes)`,
      ...m.deliveries.map((x) => `subscription: ${deliveryLine(x)}`),
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
    return 0;
  } finally {
    client.close();
  }
}
