import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { file_nervebus_v1_message } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import { freePort } from "../support/mariadb.js";
import { type BrokerProcess, runCli, spawnBroker } from "../support/process.js";

let broker: BrokerProcess;
before(async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-cli-"));
  broker = await spawnBroker(["--store", `sqlite:${join(dir, "nb.db")}`]);
});
after(async () => {
  broker.child.kill("SIGTERM");
  assert.equal(await broker.exited, 0);
});

test("publish --stream sends the packs as batches of one Publish stream; --priority sets the priority", async () => {
  const pub = await runCli(
    [
      "publish",
      "--server",
      broker.address,
      "--topic",
      "cli-stream",
      "--pack-size",
      "2",
      "--stream",
      "--priority",
      "bulk",
    ],
    "a\nb\nc\nd\ne\n",
  );
  assert.equal(pub.code, 0, pub.stderr);
  assert.equal(pub.stdout, "published 5 messages to cli-stream, seqs 1–5\n");
  const urgent = await runCli([
    "publish",
    "--server",
    broker.address,
    "--topic",
    "cli-stream",
    "--stream",
    "--priority",
    "urgent",
    "--data",
    "now",
  ]);
  assert.equal(urgent.stdout, "published 1 messages to cli-stream, seqs 6–6\n");
  const tailArgs = { topic: "cli-stream", subscription: "s", from: "earliest", count: "2" };
  const tail = await runCli([
    "tail",
    "--server",
    broker.address,
    ...Object.entries(tailArgs).flatMap(([k, v]) => [`--${k}`, v]),
  ]);
  assert.equal(tail.stdout, "6\tnow\n1\ta\n", "the urgent message first");
  const bad = await runCli([
    "publish",
    "--server",
    broker.address,
    "--topic",
    "x",
    "--priority",
    "soon",
    "--data",
    "x",
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--priority: must be urgent, normal or bulk, got "soon"/);
});

test("publish from stdin and --data, then tail from earliest prints seq and payload and acks", async () => {
  const pub = await runCli(
    ["publish", "--server", broker.address, "--topic", "cli", "--pack-size", "2"],
    "alpha\nbeta\ngamma\n",
  );
  assert.equal(pub.code, 0, pub.stderr);
  assert.equal(pub.stdout, "published 3 messages to cli, seqs 1–3\n");
  const more = await runCli([
    "publish",
    "--server",
    broker.address,
    "--topic",
    "cli",
    "--data",
    "delta",
    "--attr",
    "k=v",
  ]);
  assert.equal(more.stdout, "published 1 messages to cli, seqs 4–4\n");

  const tail = await runCli([
    "tail",
    "--server",
    broker.address,
    "--topic",
    "cli",
    "--subscription",
    "s",
    "--from",
    "earliest",
    "--count",
    "4",
  ]);
  assert.equal(tail.code, 0, tail.stderr);
  assert.equal(tail.stdout, "1\talpha\n2\tbeta\n3\tgamma\n4\tdelta\n");
  // They were acked: the same subscription has nothing left, so the next message is 5.
  await runCli(["publish", "--server", broker.address, "--topic", "cli", "--data", "epsilon"]);
  const next = await runCli([
    "tail",
    "--server",
    broker.address,
    "--topic",
    "cli",
    "--subscription",
    "s",
    "--count",
    "1",
    "--json",
  ]);
  const line = JSON.parse(next.stdout) as { seq: number; data: string; traceId: string };
  assert.equal(line.seq, 5);
  assert.equal(line.data, "epsilon");
  assert.match(line.traceId, /^[0-9a-f]{32}$/);
});

test("topic, sub and stats commands drive the AdminService", async () => {
  const s = ["--server", broker.address];
  const created = await runCli(["topic", "create", "orders", "--shards", "2", "--retention", "3d", ...s]);
  assert.equal(created.code, 0, created.stderr);
  const topic = JSON.parse(created.stdout) as { topic: { shards: number; retention: string } };
  assert.equal(topic.topic.shards, 2);
  assert.equal(topic.topic.retention, "259200s");
  const sub = await runCli([
    "sub",
    "create",
    "orders",
    "billing",
    "--max-delivery-attempts",
    "5",
    "--dead-letter-topic",
    "orders.dlq",
    "--from",
    "earliest",
    ...s,
  ]);
  assert.equal(sub.code, 0, sub.stderr);
  assert.equal(
    (JSON.parse(sub.stdout) as { subscription: { maxDeliveryAttempts: number } }).subscription
      .maxDeliveryAttempts,
    5,
  );
  await runCli(["publish", ...s, "--topic", "orders", "--data", "a", "--data", "b"]);
  assert.equal((await runCli(["sub", "pause", "orders", "billing", ...s])).stdout, "paused orders/billing\n");
  const stats = JSON.parse((await runCli(["stats", "orders", ...s])).stdout) as {
    topic: { lastSeq: string };
    subscriptions: { name: string; backlog: string; paused: boolean }[];
  };
  assert.equal(stats.topic.lastSeq, "2");
  assert.deepEqual(
    stats.subscriptions.map((x) => [x.name, x.backlog, x.paused]),
    [["billing", "2", true]],
  );
  assert.equal(
    (await runCli(["sub", "seek", "orders", "billing", "--to", "2", ...s])).stdout,
    "sought orders/billing: next delivery is seq 2\n",
  );
  assert.equal(
    (await runCli(["sub", "purge", "orders", "billing", ...s])).stdout,
    "purged orders/billing: floor 2\n",
  );
  assert.equal((await runCli(["topic", "list", ...s])).stdout.split("\n").includes("orders"), true);
  const bad = await runCli(["sub", "update", "orders", "billing", "--ordering", "maybe", ...s]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, 'nervebus: --ordering: expected true or false, got "maybe"\n');
  const missing = await runCli(["topic", "get", "nope", ...s]);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr, "nervebus: topic get: NOT_FOUND: topic nope does not exist\n");
  assert.equal((await runCli(["sub", "delete", "orders", "billing", ...s])).code, 0);
  assert.equal((await runCli(["topic", "delete", "orders", ...s])).stdout, "deleted topic orders\n");
});

test("messages searches a topic's log and message shows one by seq, without consuming either", async () => {
  const s = ["--server", broker.address];
  const pub = await runCli(
    ["publish", ...s, "--topic", "browse", "--ordering-key", "k1", "--attr", "color=red"],
    "one\ntwo\nthree\n",
  );
  assert.equal(pub.code, 0, pub.stderr);
  await runCli(["publish", ...s, "--topic", "browse", "--data", "four"]);
  const all = await runCli(["messages", ...s, "--topic", "browse"]);
  assert.equal(all.code, 0, all.stderr);
  assert.deepEqual(
    all.stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => [l.split("\t")[0], l.split("\t")[2]]),
    [
      ["1", "one"],
      ["2", "two"],
      ["3", "three"],
      ["4", "four"],
    ],
  );
  const red = await runCli(["messages", ...s, "--topic", "browse", "--attr", "color=red", "--limit", "2"]);
  assert.deepEqual(
    red.stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split("\t")[0]),
    ["1", "2"],
  );
  assert.equal(red.stderr, "more: examined through seq 2; go on with --from-seq 3\n");
  const keyed = await runCli(["messages", ...s, "--topic", "browse", "--ordering-key", "k1", "--json"]);
  const lines = keyed.stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l: { message: { data: string } }) => l.message.data),
    ["one", "two", "three"],
  );
  const trace = (lines[1] as { message: { traceId: string } }).message.traceId;
  const byTrace = await runCli(["messages", ...s, "--topic", "browse", "--trace-id", trace, "--deliveries"]);
  assert.match(byTrace.stdout, /^2\t\S+\ttwo\n$/);

  // A subscription that took nothing shows it, message by message.
  await runCli(["sub", "create", "browse", "audit", "--from", "earliest", ...s]);
  const one = await runCli(["message", ...s, "--topic", "browse", "--seq", "2"]);
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stdout, /^seq: {10}2\n/);
  assert.match(one.stdout, /\nordering key: k1\n/);
  assert.match(one.stdout, /\nattribute: {4}color=red\n/);
  assert.match(one.stdout, /\ndata: {9}two \(3 bytes\)\n/);
  assert.match(one.stdout, /\nsubscription: audit: not delivered\n$/);
  const json = JSON.parse(
    (await runCli(["message", ...s, "--topic", "browse", "--seq", "4", "--json"])).stdout,
  );
  assert.equal(json.message.data, "four");

  const missing = await runCli(["message", ...s, "--topic", "browse", "--seq", "9"]);
  assert.notEqual(missing.code, 0);
  assert.match(
    missing.stderr,
    /^nervebus: message 9 of browse: NOT_FOUND: seq 9 of topic browse was never published/,
  );
  const unbounded = await runCli(["messages", ...s, "--topic", "browse", "--scan-limit", "1000000"]);
  assert.notEqual(unbounded.code, 0);
  assert.match(unbounded.stderr, /INVALID_ARGUMENT: scan_limit: one call examines at most 100000 messages/);
  // Nothing was consumed: the subscription still gets all four.
  const tail = await runCli(["tail", ...s, "--topic", "browse", "--subscription", "audit", "--count", "4"]);
  assert.equal(tail.stdout, "1\tone\n2\ttwo\n3\tthree\n4\tfour\n");
});

test("schema set, get and clear make a topic typed: the CLI's text payloads are refused until cleared", async () => {
  const s = ["--server", broker.address];
  const file = join(mkdtempSync(join(tmpdir(), "nb-cli-schema-")), "set.binpb");
  writeFileSync(
    file,
    toBinary(
      FileDescriptorSetSchema,
      create(FileDescriptorSetSchema, { file: [file_nervebus_v1_message.proto] }),
    ),
  );
  await runCli(["topic", "create", "typed", ...s]);
  const set = await runCli([
    "schema",
    "set",
    ...s,
    "--topic",
    "typed",
    "--type",
    "nervebus.v1.Message",
    "--descriptor-set",
    file,
  ]);
  assert.equal(set.code, 0, set.stderr);
  assert.match(set.stdout, /^typed: nervebus\.v1\.Message \(descriptor set of \d+ bytes, set \S+Z\)\n$/);
  assert.match(
    (await runCli(["schema", "get", ...s, "--topic", "typed"])).stdout,
    /^typed: nervebus\.v1\.Message /,
  );
  const refused = await runCli(["publish", ...s, "--topic", "typed", "--data", "hello"]);
  assert.notEqual(refused.code, 0);
  assert.match(
    refused.stderr,
    /INVALID_ARGUMENT: messages\[0\]\.data: does not parse as nervebus\.v1\.Message/,
  );
  const wrong = await runCli([
    "schema",
    "set",
    ...s,
    "--topic",
    "typed",
    "--type",
    "no.Such",
    "--descriptor-set",
    file,
  ]);
  assert.match(
    wrong.stderr,
    /^nervebus: schema set typed: INVALID_ARGUMENT: schema\.message_type: "no\.Such" is not a message type/,
  );
  assert.equal((await runCli(["schema", "clear", ...s, "--topic", "typed"])).stdout, "typed: untyped\n");
  assert.equal((await runCli(["publish", ...s, "--topic", "typed", "--data", "hello"])).code, 0);
});

test("bad flags and unreachable servers get one clear line and a non-zero exit", async () => {
  const cases: [string[], RegExp][] = [
    [["publish", "--server", broker.address], /^nervebus: --topic is required\n$/],
    [
      ["publish", "--server", broker.address, "--topic", "t", "--bogus"],
      /^nervebus: Unknown option '--bogus'/,
    ],
    [
      ["publish", "--server", "nowhere", "--topic", "t"],
      /^nervebus: --server: must be HOST:PORT, got "nowhere"\n$/,
    ],
    [
      ["tail", "--server", broker.address, "--topic", "t", "--subscription", "s", "--from", "yesterday"],
      /^nervebus: --from: must be earliest, latest or a seq ≥ 1, got "yesterday"\n$/,
    ],
    [
      ["tail", "--server", broker.address, "--topic", "t", "--subscription", "s", "--count", "0"],
      /^nervebus: --count: must be a whole number ≥ 1, got 0\n$/,
    ],
    [
      ["publish", "--server", broker.address, "--topic", "bad name", "--data", "x"],
      /^nervebus: publish to bad name failed after 0 messages: INVALID_ARGUMENT: topic: contains " "/,
    ],
    // Before: "The number NaN cannot be converted to a BigInt because it is not an integer".
    [
      ["sub", "seek", "orders", "billing", "--to", "tomorrowish", "--server", broker.address],
      /^nervebus: --to: must be a seq ≥ 1 or an ISO time, got "tomorrowish"\n$/,
    ],
    // Before: a seq rounded to 1e+23, then "INTERNAL: Request message serialization failure".
    [
      ["message", "--server", broker.address, "--topic", "t", "--seq", "99999999999999999999999"],
      /^nervebus: --seq: must be at most 9007199254740991, got "99999999999999999999999"\n$/,
    ],
    // Before: "--to is required" (the name was missing) and the usage of every command.
    [
      ["sub", "seek", "orders", "--to", "5", "--server", broker.address],
      /^nervebus: subscription name is required\nusage:\n {2}nervebus sub {3}list[\s\S]*seek TOPIC NAME --to SEQ\|TIME\nconnection:/,
    ],
    // Before: "stats stats: NOT_FOUND …".
    [
      ["stats", "nosuch", "--server", broker.address],
      /^nervebus: stats: NOT_FOUND: topic nosuch does not exist\n$/,
    ],
    // Before: accepted, and sent rounded.
    [
      ["topic", "create", "big", "--retention-bytes", "99999999999999999999", "--server", broker.address],
      /^nervebus: --retention-bytes: must be at most 9007199254740991, got "99999999999999999999"\n$/,
    ],
    [["serve", "--shards", "0"], /^nervebus: --shards: must be between 1 and 64, got 0\n$/],
    [
      ["serve", "--store", "postgres://x"],
      /^nervebus: store: "postgres:\/\/x" is neither sqlite:PATH nor mysql:/,
    ],
    [
      ["frobnicate"],
      /^nervebus: unknown command "frobnicate"; expected serve, publish, tail, topic, sub, stats, messages, message, schema, locate, cluster, drain-broker or move-topic\n$/,
    ],
  ];
  for (const [args, stderr] of cases) {
    const r = await runCli(args);
    assert.notEqual(r.code, 0, args.join(" "));
    assert.match(r.stderr, stderr, args.join(" "));
  }
  const port = await freePort();
  const r = await runCli(["publish", "--server", `127.0.0.1:${port}`, "--topic", "t", "--data", "x"]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`^nervebus: --server 127\\.0\\.0\\.1:${port}: broker not reachable`));
  assert.equal(r.stderr.split("\n").filter(Boolean).length, 1, "one line");
});

test("a second broker on the same SQLite file refuses to start with a clear message", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-cli-own-"));
  const store = `sqlite:${join(dir, "nb.db")}`;
  const first = await spawnBroker(["--store", store]);
  try {
    const second = await runCli(["serve", "--listen", "127.0.0.1:0", "--store", store]);
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /nervebus: store .* is in use by another broker process/);
  } finally {
    first.child.kill("SIGTERM");
    await first.exited;
  }
});
