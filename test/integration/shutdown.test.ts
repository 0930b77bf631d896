import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  SendPackRequestSchema,
  SendPackResponseSchema,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { healthClient, startBroker, TestClient } from "../support/broker.js";

function freshStore(name: string): string {
  return `sqlite:${join(mkdtempSync(join(tmpdir(), `nb-${name}-`)), "nb.db")}`;
}

/** A gRPC message frame: uncompressed flag, big-endian length, bytes. */
function frame(bytes: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([head, bytes]);
}

test("a SendPack answered as the broker shuts down gets its answer before the connection closes", async () => {
  const bus = await startBroker(freshStore("drain-answer"));
  // A raw HTTP/2 client whose receive window is 0: the broker can send the answer's headers
  // but not its message, so the answer is still on its way when the shutdown starts. The
  // broker used to close the connection once no handler was running, and this answer (like
  // those a loaded broker had not finished writing) was cut off with RST_STREAM CANCEL.
  const session = http2.connect(`http://${bus.address}`, { settings: { initialWindowSize: 0 } });
  session.on("error", () => {});
  let stopping: Promise<void> | undefined;
  try {
    const request = create(SendPackRequestSchema, {
      topic: "drain",
      messages: [{ data: Buffer.from("in flight"), messageId: "m1" }],
    });
    const stream = session.request({
      ":method": "POST",
      ":path": "/nervebus.v1.PublisherService/SendPack",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once("trailers", resolve));
    const closed = new Promise<number>((resolve) => stream.once("close", () => resolve(stream.rstCode ?? 0)));
    stream.end(frame(toBinary(SendPackRequestSchema, request)));
    // Headers go out with the answer's message: the pack is durable and the handler answered.
    await new Promise((resolve) => stream.once("response", resolve));

    stopping = bus.stop();
    // The old broker cut the connection within 25 ms of the stop; this one waits for the
    // answer, so the stop may not end before the window opens.
    await Promise.race([stopping, new Promise((r) => setTimeout(r, 300))]);
    session.settings({ initialWindowSize: 65_535 });

    const rstCode = await closed;
    assert.equal(rstCode, http2.constants.NGHTTP2_NO_ERROR, "the stream was not reset");
    const t = await trailers;
    assert.equal(t["grpc-status"], "0", `status ${t["grpc-status"]} ${t["grpc-message"]}`);
    const body = Buffer.concat(chunks);
    const response = fromBinary(SendPackResponseSchema, body.subarray(5, 5 + body.readUInt32BE(1)));
    assert.equal(response.firstSeq, 1n);
    await stopping;
  } finally {
    session.destroy();
    await (stopping ?? bus.stop());
  }
});

test("shutdown ends Receive streams and health watches with UNAVAILABLE, then stops without waiting out the grace", async () => {
  // A grace longer than the test's timeout: the stop must not wait for it.
  const bus = await startBroker(freshStore("drain-streams"), { shutdownGraceMs: 600_000 });
  const client = new TestClient(bus.address);
  const health = healthClient(bus.address);
  try {
    await client.publish("t", ["m"]);
    const receive = client.receive("t", "s");
    await receive.until(() => receive.deliveries.length === 1);
    const watch = health.watch({ service: "" });
    const watchEnd = new Promise<grpc.ServiceError>((resolve) => watch.on("error", resolve));
    await new Promise((resolve) => watch.once("data", resolve));

    await bus.stop();
    await receive.until(() => receive.ended);
    assert.equal(receive.error?.code, grpc.status.UNAVAILABLE, receive.error?.details);
    // Without this, forceShutdown reset the watch (CANCELLED) or the watch held the
    // connection open for the whole grace.
    assert.equal((await watchEnd).code, grpc.status.UNAVAILABLE);
  } finally {
    client.close();
    health.close();
    await bus.stop();
  }
});
