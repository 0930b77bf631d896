import assert from "node:assert/strict";
import { test } from "node:test";
import { ReceivedMessage } from "../src/received-message.js";

function message(): ReceivedMessage {
  return new ReceivedMessage(
    {
      topic: "t",
      subscription: "s",
      seq: 1,
      data: new Uint8Array(0),
      attributes: {},
      orderingKey: "",
      messageId: "",
      publishTime: new Date(0),
      attempt: 1,
      traceId: "",
      priority: "normal",
    },
    { settle: () => undefined, extend: () => undefined },
  );
}

test("a message's signal aborts with the abandon reason, whether it was asked for before or after", () => {
  const early = message();
  const signal = early.signal;
  assert.equal(signal.aborted, false);
  early.abandon(new Error("closing"));
  assert.equal(signal.aborted, true);
  assert.equal((signal.reason as Error).message, "closing");

  const late = message();
  late.abandon(new Error("stopped"));
  late.abandon(new Error("again"));
  assert.equal(late.signal.aborted, true);
  assert.equal((late.signal.reason as Error).message, "stopped", "the first reason stays");
  assert.equal(late.signal, late.signal, "one signal per message");
});
