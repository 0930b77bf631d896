import { createInterface } from "node:readline";
import { create } from "@bufbuild/protobuf";
import { type Message, MessageSchema, Priority } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import { SendPackRequestSchema } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { unary } from "../api/index.js";
import { messageBytes, NerveBusError } from "../core/index.js";
import { parseClientArgs, requiredFlag } from "./client-args.js";
import { connect, describeGrpcError } from "./connect.js";
import { StreamSender } from "./stream-sender.js";

/** --priority values. */
const CLI_PRIORITIES = {
  urgent: Priority.URGENT,
  normal: Priority.UNSPECIFIED,
  bulk: Priority.BULK,
} as const;

/** `nervebus publish`: one message per --data or per line of standard input, sent in packs. */
export async function publishCommand(args: string[]): Promise<number> {
  const values = parseClientArgs(args, {
    topic: { type: "string" },
    data: { type: "string", multiple: true },
    attr: { type: "string", multiple: true },
    "ordering-key": { type: "string", default: "" },
    "pack-size": { type: "string", default: "1000" },
    priority: { type: "string", default: "normal" },
    stream: { type: "boolean", default: false },
  });
  const priority = Object.hasOwn(CLI_PRIORITIES, values.priority)
    ? CLI_PRIORITIES[values.priority as keyof typeof CLI_PRIORITIES]
    : undefined;
  if (priority === undefined)
    throw new NerveBusError(
      "invalid_argument",
      `--priority: must be urgent, normal or bulk, got ${JSON.stringify(values.priority)}`,
    );
  const topic = requiredFlag(values.topic, "topic");
  const packSize = Number(values["pack-size"]);
  if (!Number.isInteger(packSize) || packSize < 1)
    throw new NerveBusError(
      "invalid_argument",
      `--pack-size: must be a whole number ≥ 1, got ${values["pack-size"]}`,
    );
  const attributes: Record<string, string> = {};
  for (const a of values.attr ?? []) {
    const eq = a.indexOf("=");
    if (eq <= 0)
      throw new NerveBusError("invalid_argument", `--attr: expected KEY=VALUE, got ${JSON.stringify(a)}`);
    attributes[a.slice(0, eq)] = a.slice(eq + 1);
  }
  const client = await connect(values);
  const encoder = new TextEncoder();
  let pack: Message[] = [];
  let published = 0;
  let first = 0n;
  let last = 0n;
  // --stream: the packs go as batches of one Publish stream, confirmed in order.
  const sender = values.stream ? new StreamSender(client.publisher, topic) : undefined;
  const confirms: Promise<void>[] = [];
  const confirmed = (res: { firstSeq: bigint; lastSeq: bigint }, count: number) => {
    if (first === 0n) first = res.firstSeq;
    if (res.lastSeq > 0n) last = res.lastSeq;
    published += count;
  };
  const failed = (err: unknown) =>
    new NerveBusError(
      "unavailable",
      `publish to ${topic} failed after ${published} messages: ${describeGrpcError(err)}`,
    );
  const flush = async () => {
    if (pack.length === 0) return;
    const messages = pack;
    pack = [];
    if (sender !== undefined) {
      let bytes = 0;
      for (const m of messages) bytes += messageBytes(m);
      try {
        const sent = await sender.send(messages, bytes);
        confirms.push(sent.confirmed.then((res) => confirmed(res, messages.length)));
      } catch (err) {
        throw failed(err);
      }
      return;
    }
    try {
      const res = await unary(
        client.publisher.sendPack.bind(client.publisher),
        create(SendPackRequestSchema, { topic, messages }),
        {
          deadline: Date.now() + 30_000,
        },
      );
      confirmed(res, messages.length);
    } catch (err) {
      throw failed(err);
    }
  };
  const add = async (text: string) => {
    pack.push(
      create(MessageSchema, {
        data: encoder.encode(text),
        attributes,
        orderingKey: values["ordering-key"],
        priority,
      }),
    );
    if (pack.length >= packSize) await flush();
  };
  try {
    if (values.data !== undefined) {
      for (const d of values.data) await add(d);
    } else {
      for await (const line of createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY }))
        await add(line);
    }
    await flush();
    if (sender !== undefined) {
      sender.end();
      try {
        await Promise.all(confirms);
      } catch (err) {
        throw failed(err);
      }
    }
  } finally {
    client.close();
  }
  process.stdout.write(
    `published ${published} messages to ${topic}${published > 0 ? `, seqs ${first}–${last}` : ""}\n`,
  );
  return 0;
}
