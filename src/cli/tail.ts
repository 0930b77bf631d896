import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  ReceiveRequestSchema,
  type ReceiveResponse,
  StartPoint,
  SubscribeSchema,
  WindowSchema,
} from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { NerveBusError } from "../core/index.js";
import { parseClientArgs, requiredFlag } from "./client-args.js";
import { connect, describeGrpcError } from "./connect.js";

/** `nervebus tail`: prints each delivery (seq and payload) and acks it; exits after --count. */
export async function tailCommand(args: string[]): Promise<number> {
  const values = parseClientArgs(args, {
    topic: { type: "string" },
    subscription: { type: "string" },
    from: { type: "string", default: "latest" },
    count: { type: "string" },
    window: { type: "string", default: "1000" },
    json: { type: "boolean", default: false },
  });
  const topic = requiredFlag(values.topic, "topic");
  const subscription = requiredFlag(values.subscription, "subscription");
  const count = values.count === undefined ? Number.POSITIVE_INFINITY : Number(values.count);
  if (!(count >= 1) || (Number.isFinite(count) && !Number.isInteger(count))) {
    throw new NerveBusError("invalid_argument", `--count: must be a whole number ≥ 1, got ${values.count}`);
  }
  const windowSize = Number(values.window);
  if (!Number.isInteger(windowSize) || windowSize < 1)
    throw new NerveBusError("invalid_argument", `--window: must be a whole number ≥ 1, got ${values.window}`);
  let start: { case: "startPoint"; value: StartPoint } | { case: "startSeq"; value: bigint };
  if (values.from === "earliest") start = { case: "startPoint", value: StartPoint.EARLIEST };
  else if (values.from === "latest") start = { case: "startPoint", value: StartPoint.LATEST };
  else if (/^[1-9]\d*$/.test(values.from)) start = { case: "startSeq", value: BigInt(values.from) };
  else
    throw new NerveBusError(
      "invalid_argument",
      `--from: must be earliest, latest or a seq ≥ 1, got ${JSON.stringify(values.from)}`,
    );

  const client = await connect(values);
  const call = client.subscriber.receive();
  const decoder = new TextDecoder();
  let received = 0;
  const done = new Promise<void>((resolve, reject) => {
    call.on("data", (res: ReceiveResponse) => {
      if (res.deliveries.length === 0 || received >= count) return;
      const acks: bigint[] = [];
      for (const d of res.deliveries) {
        if (received >= count) break;
        received++;
        const text = decoder.decode(d.data);
        const line = values.json
          ? JSON.stringify({
              seq: Number(d.seq),
              data: text,
              attributes: d.attributes,
              attempt: d.attempt,
              traceId: d.traceId,
              publishTime: d.publishTime ? new Date(timestampMs(d.publishTime)).toISOString() : undefined,
            })
          : `${d.seq}\t${text}`;
        process.stdout.write(`${line}\n`);
        acks.push(d.seq);
      }
      call.write(create(ReceiveRequestSchema, { ackSeqs: acks }));
      // Half-closing after the last ack: the broker handles requests in order, so the acks
      // land before it ends the stream, and 'status' below tells us it has.
      if (received >= count) call.end();
    });
    call.on("status", () => resolve());
    call.on("error", (err) => {
      if (received >= count) resolve();
      else
        reject(new NerveBusError("unavailable", `tail ${topic}/${subscription}: ${describeGrpcError(err)}`));
    });
    call.on("end", () => resolve());
  });
  call.write(
    create(ReceiveRequestSchema, {
      subscribe: create(SubscribeSchema, {
        topic,
        subscription,
        window: create(WindowSchema, { maxMessages: windowSize }),
        start,
      }),
    }),
  );
  const stop = () => call.end();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    await done;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    client.close();
  }
  return 0;
}
