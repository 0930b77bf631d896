import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { transportErrorInterceptor } from "../../src/api/transport-errors.js";

type Status = { code: number; details: string; metadata: grpc.Metadata | null };

/** Stands in for grpc-js's base server call: sendStatus on its class, a paused stream. */
class FakeBaseCall {
  readonly sent: Status[] = [];
  resumed = 0;
  readonly stream = { resume: () => this.resumed++ };
  sendStatus(status: Status): void {
    this.sent.push(status);
  }
}

const method = { path: "/nervebus.v1.PublisherService/SendPack" } as grpc.ServerMethodDefinition<
  unknown,
  unknown
>;
const refusal: Status = {
  code: grpc.status.INTERNAL,
  details: "Failed to decompress message",
  metadata: null,
};

test("grpc-js's own refusals are rewritten by one shared wrapper, not a closure per call", () => {
  const a = new FakeBaseCall();
  const b = new FakeBaseCall();
  for (const call of [a, b])
    transportErrorInterceptor(method, call as unknown as grpc.ServerInterceptingCallInterface);
  // A closure holding the call, set on each call, kept every finished call's objects alive
  // through young-generation collections (BENCHMARKS.md, "what survives a scavenge").
  assert.equal(Object.hasOwn(a, "sendStatus"), false);
  a.sendStatus(refusal);
  assert.equal(a.sent[0]?.code, grpc.status.INVALID_ARGUMENT);
  assert.match(a.sent[0]?.details ?? "", /does not decompress/);
  assert.equal(a.resumed, 1, "the rest of the request body is let through once answered");
  b.sendStatus({ code: grpc.status.OK, details: "OK", metadata: null });
  assert.deepEqual(
    b.sent.map((s) => s.code),
    [grpc.status.OK],
  );
  // A call of the same class the interceptor did not see keeps grpc-js's own behaviour.
  const other = new FakeBaseCall();
  other.sendStatus(refusal);
  assert.deepEqual([other.sent[0]?.code, other.resumed], [grpc.status.INTERNAL, 0]);
});
