import { parseArgs } from "node:util";
import { create, type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AdminService } from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { StartPoint } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { unary } from "../api/index.js";
import { parseDuration } from "../config/index.js";
import { NerveBusError } from "../core/index.js";
import { wholeNumberFlag } from "./client-args.js";
import { CONNECTION_FLAGS, CONNECTION_USAGE, connect, describeGrpcError } from "./connect.js";

type Admin = (typeof AdminService)["method"];

/** "30s", "5m", "7d", "250ms" or plain milliseconds, rounded to whole ms. */
function durationFlag(flag: string, value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined)
    throw new NerveBusError(
      "invalid_argument",
      `--${flag}: expected a duration like 30s, 5m, 7d or 250ms, got ${JSON.stringify(value)}`,
    );
  return Math.round(ms);
}

function parseBool(flag: string, value: string): boolean {
  if (value === "true") return true;
  if (value === "false") return false;
  throw new NerveBusError(
    "invalid_argument",
    `--${flag}: expected true or false, got ${JSON.stringify(value)}`,
  );
}

const TOPIC_FLAGS = {
  shards: { type: "string" },
  retention: { type: "string" },
  "retention-bytes": { type: "string" },
  "dedup-window": { type: "string" },
  ephemeral: { type: "boolean" },
} as const;

const SUB_FLAGS = {
  "ack-deadline": { type: "string" },
  "min-backoff": { type: "string" },
  "max-backoff": { type: "string" },
  "max-delivery-attempts": { type: "string" },
  "dead-letter-topic": { type: "string" },
  ordering: { type: "string" },
  from: { type: "string" },
} as const;

/** Fields given on the command line, and their update-mask paths. */
function topicFields(v: Record<string, string | boolean | undefined>) {
  const topic: Record<string, unknown> = {};
  const paths: string[] = [];
  if (typeof v.shards === "string") topic.shards = wholeNumberFlag("shards", v.shards);
  if (typeof v.retention === "string") {
    topic.retention = durationFromMs(durationFlag("retention", v.retention));
    paths.push("retention");
  }
  if (typeof v["retention-bytes"] === "string") {
    topic.retentionBytes = BigInt(wholeNumberFlag("retention-bytes", v["retention-bytes"]));
    paths.push("retention_bytes");
  }
  if (typeof v["dedup-window"] === "string") {
    topic.dedupWindow = durationFromMs(durationFlag("dedup-window", v["dedup-window"]));
    paths.push("dedup_window");
  }
  if (v.ephemeral === true) topic.ephemeral = true;
  return { topic, paths };
}

function subscriptionFields(v: Record<string, string | boolean | undefined>) {
  const sub: Record<string, unknown> = {};
  const paths: string[] = [];
  const durations: [string, string, string][] = [
    ["ack-deadline", "ackDeadline", "ack_deadline"],
    ["min-backoff", "minBackoff", "min_backoff"],
    ["max-backoff", "maxBackoff", "max_backoff"],
  ];
  for (const [flag, field, path] of durations) {
    const value = v[flag];
    if (typeof value === "string") {
      sub[field] = durationFromMs(durationFlag(flag, value));
      paths.push(path);
    }
  }
  if (typeof v["max-delivery-attempts"] === "string") {
    sub.maxDeliveryAttempts = wholeNumberFlag("max-delivery-attempts", v["max-delivery-attempts"]);
    paths.push("max_delivery_attempts");
  }
  if (typeof v["dead-letter-topic"] === "string") {
    sub.deadLetterTopic = v["dead-letter-topic"];
    paths.push("dead_letter_topic");
  }
  if (typeof v.ordering === "string") {
    sub.ordering = parseBool("ordering", v.ordering);
    paths.push("ordering");
  }
  return { sub, paths };
}

function startOf(from: string | undefined) {
  if (from === undefined || from === "latest")
    return { case: "startPoint" as const, value: StartPoint.LATEST };
  if (from === "earliest") return { case: "startPoint" as const, value: StartPoint.EARLIEST };
  if (/^[1-9]\d*$/.test(from)) return { case: "startSeq" as const, value: BigInt(from) };
  const time = Date.parse(from);
  if (!Number.isNaN(time)) return { case: "startTime" as const, value: timestampFromMs(time) };
  throw new NerveBusError(
    "invalid_argument",
    `--from: must be earliest, latest, a seq ≥ 1 or an ISO time, got ${JSON.stringify(from)}`,
  );
}

const USAGE = `usage:
  nervebus topic list|get|create|update|delete [NAME] [--shards N] [--retention 7d] [--retention-bytes N] [--dedup-window 2m] [--ephemeral]
  nervebus sub   list|get|create|update|delete|pause|resume|purge TOPIC [NAME]
                 [--ack-deadline 30s] [--min-backoff 1s] [--max-backoff 60s] [--max-delivery-attempts N]
                 [--dead-letter-topic T] [--ordering true|false] [--from earliest|latest|SEQ|TIME]
  nervebus sub   seek TOPIC NAME --to SEQ|TIME
  nervebus stats TOPIC
  nervebus locate TOPIC        (--cluster: the address of the broker serving TOPIC)
  nervebus cluster             (--cluster: the brokers and the topics each owns, as JSON)
  nervebus drain-broker        (--cluster: hand the --server broker's topics to the others)
  nervebus move-topic --topic T --to HOST:PORT/DATABASE   (a database of the broker's --store)
${CONNECTION_USAGE}`;

/** The usage of `kind`'s commands only (its lines of USAGE, and the connection flags). */
function usageOf(kind: string): string {
  const lines: string[] = [];
  let mine = false;
  for (const line of USAGE.split("\n")) {
    if (line.startsWith("  nervebus ")) mine = line.startsWith(`  nervebus ${kind} `);
    else if (!line.startsWith(" ")) mine = line !== "usage:";
    if (mine || line === "usage:") lines.push(line);
  }
  return lines.join("\n");
}

/** Commands whose first positional is not a verb. */
type Single = "stats" | "locate" | "cluster" | "drain-broker" | "move-topic";

/**
 * `nervebus topic|sub|stats|locate|cluster|drain-broker|move-topic …`: the AdminService from the command
 * line; prints JSON (or one line).
 */
export async function adminCommand(kind: "topic" | "sub" | Single, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      ...CONNECTION_FLAGS,
      to: { type: "string" },
      topic: { type: "string" },
      ...TOPIC_FLAGS,
      ...SUB_FLAGS,
    },
  });
  const [verb, a, b] = kind === "topic" || kind === "sub" ? positionals : [kind, ...positionals];
  const need = (value: string | undefined, what: string): string => {
    if (value === undefined)
      throw new NerveBusError("invalid_argument", `${what} is required\n${usageOf(kind)}`);
    return value;
  };
  const client = await connect(values);
  const call = async <K extends keyof Admin>(
    method: K,
    request: Parameters<typeof create<Admin[K]["input"]>>[1],
    timeoutMs = 30_000,
  ) => {
    const desc = AdminService.method[method];
    const fn = (client.admin[method] as unknown as (...x: unknown[]) => unknown).bind(client.admin);
    try {
      return await unary<MessageShape<Admin[K]["input"]>, MessageShape<Admin[K]["output"]>>(
        fn as never,
        create(desc.input, request as never) as MessageShape<Admin[K]["input"]>,
        { deadline: Date.now() + timeoutMs },
      );
    } catch (err) {
      // "stats: …", "topic create: …" (a single command's verb is its name).
      const command = verb === kind ? kind : `${kind} ${verb}`;
      throw new NerveBusError("unavailable", `${command}: ${describeGrpcError(err)}`);
    }
  };
  const print = <D extends DescMessage>(schema: D, message: MessageShape<D>) =>
    process.stdout.write(`${JSON.stringify(toJson(schema, message), null, 2)}\n`);
  /** Calls `method` and prints its answer as JSON. */
  const show = async <K extends keyof Admin>(method: K, request: Parameters<typeof call<K>>[1]) =>
    print(AdminService.method[method].output, await call(method, request));
  try {
    if (kind === "topic") {
      const { topic, paths } = topicFields(values);
      switch (verb) {
        case "list":
          for (const t of (await call("listTopics", {})).topics) process.stdout.write(`${t.name}\n`);
          return 0;
        case "get":
          await show("getTopic", { name: need(a, "topic name") });
          return 0;
        case "create":
          await show("createTopic", { topic: { ...topic, name: need(a, "topic name") } });
          return 0;
        case "update":
          await show("updateTopic", {
            topic: { ...topic, name: need(a, "topic name") },
            updateMask: { paths },
          });
          return 0;
        case "delete":
          await call("deleteTopic", { name: need(a, "topic name") });
          process.stdout.write(`deleted topic ${a}\n`);
          return 0;
      }
    } else if (kind === "sub") {
      const topic = need(a, "topic");
      const { sub, paths } = subscriptionFields(values);
      switch (verb) {
        case "list":
          for (const s of (await call("listSubscriptions", { topic })).subscriptions)
            process.stdout.write(`${s.name}\n`);
          return 0;
        case "get":
          await show("getSubscription", { topic, name: need(b, "subscription name") });
          return 0;
        case "create":
          await show("createSubscription", {
            subscription: { ...sub, topic, name: need(b, "subscription name") },
            start: startOf(values.from),
          });
          return 0;
        case "update":
          await show("updateSubscription", {
            subscription: { ...sub, topic, name: need(b, "subscription name") },
            updateMask: { paths },
          });
          return 0;
        case "delete":
          await call("deleteSubscription", { topic, name: need(b, "subscription name") });
          process.stdout.write(`deleted subscription ${b} of ${topic}\n`);
          return 0;
        case "pause":
        case "resume": {
          const method = verb === "pause" ? "pauseSubscription" : "resumeSubscription";
          await call(method, { topic, name: need(b, "subscription name") });
          process.stdout.write(`${verb === "pause" ? "paused" : "resumed"} ${topic}/${b}\n`);
          return 0;
        }
        case "purge": {
          const r = await call("purgeSubscription", { topic, name: need(b, "subscription name") });
          process.stdout.write(`purged ${topic}/${b}: floor ${r.floor}\n`);
          return 0;
        }
        case "seek": {
          const name = need(b, "subscription name");
          const to = need(values.to, "--to");
          const seq = /^[1-9]\d*$/.test(to);
          // Checked before timestampFromMs, which throws on NaN without naming the flag.
          if (!seq && Number.isNaN(Date.parse(to))) {
            throw new NerveBusError(
              "invalid_argument",
              `--to: must be a seq ≥ 1 or an ISO time, got ${JSON.stringify(to)}`,
            );
          }
          const target = seq
            ? { case: "seq" as const, value: BigInt(to) }
            : { case: "time" as const, value: timestampFromMs(Date.parse(to)) };
          const r = await call("seekSubscription", { topic, name, target });
          process.stdout.write(`sought ${topic}/${b}: next delivery is seq ${r.floor + 1n}\n`);
          return 0;
        }
      }
    } else if (kind === "locate") {
      const r = await call("locateTopic", { topic: need(a, "topic") });
      // Empty: the broker asked serves it.
      process.stdout.write(`${r.address === "" ? values.server : r.address}\n`);
      return 0;
    } else if (kind === "cluster") {
      await show("getCluster", {});
      return 0;
    } else if (kind === "drain-broker") {
      // Each topic waits for its packs in flight and its state to be written: minutes at most.
      const r = await call("drainBroker", {}, 600_000);
      process.stdout.write(`drained ${values.server}: ${r.topics} topics handed over\n`);
      return 0;
    } else if (kind === "move-topic") {
      // The copy takes as long as the topic is big: an hour before the CLI stops waiting (the
      // move goes on in the broker; running the command again finishes or confirms it).
      const request = { topic: need(values.topic, "--topic"), toHost: need(values.to, "--to") };
      print(AdminService.method.moveTopic.output, await call("moveTopic", request, 3_600_000));
      return 0;
    } else {
      await show("getStats", { topic: need(a, "topic") });
      return 0;
    }
    throw new NerveBusError(
      "invalid_argument",
      `unknown ${kind} command ${JSON.stringify(verb ?? "")}\n${usageOf(kind)}`,
    );
  } finally {
    client.close();
  }
}
