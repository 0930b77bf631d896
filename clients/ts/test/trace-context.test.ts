import assert from "node:assert/strict";
import { test } from "node:test";
import { isSpanContextValid, type SpanContext } from "@opentelemetry/api";
import { parseTraceparent } from "../src/trace-context.js";

/** The W3C rule as a regular expression (what the client used before): the reference. */
function reference(tp: string): SpanContext | undefined {
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/.exec(tp);
  if (m === null || m[1] === "ff" || (m[1] === "00" && m[5] !== undefined)) return undefined;
  const sc: SpanContext = {
    traceId: m[2]!,
    spanId: m[3]!,
    traceFlags: Number.parseInt(m[4]!, 16),
    isRemote: true,
  };
  return isSpanContextValid(sc) ? sc : undefined;
}

test("parseTraceparent reads what the W3C rule accepts and refuses the rest, as the regular expression did", () => {
  const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const cases = new Set<string>([
    valid,
    "",
    valid.slice(0, 54),
    `${valid}-`,
    `${valid}-x`,
    `01${valid.slice(2)}-future-fields`,
    `01${valid.slice(2)}`,
    `01${valid.slice(2)}x`,
    `01${valid.slice(2)}-a\\nb`,
    `01${valid.slice(2)}-a\nb`,
    `01${valid.slice(2)}-a\u2028b`,
    `ff${valid.slice(2)}`,
    `00-${"0".repeat(32)}-00f067aa0ba902b7-01`,
    `00-4bf92f3577b34da6a3ce929d0e0e4736-${"0".repeat(16)}-01`,
    valid.toUpperCase(),
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
  ]);
  // Every position of the valid one changed to each character that matters there.
  for (let i = 0; i < valid.length; i++)
    for (const c of ["-", "0", "a", "f", "g", "A", " ", "\n"])
      cases.add(valid.slice(0, i) + c + valid.slice(i + 1));
  let accepted = 0;
  for (const tp of cases) {
    const want = reference(tp);
    assert.deepEqual(parseTraceparent(tp), want, JSON.stringify(tp));
    if (want !== undefined) accepted++;
  }
  assert.ok(accepted > 50 && accepted < cases.size - 50, `${accepted} of ${cases.size} accepted`);
});
