import assert from "node:assert/strict";
import { test } from "node:test";
import { newTraceparent, traceIdOf } from "../../src/wire/index.js";

test("traceIdOf accepts exactly W3C traceparents and rejects the rest", () => {
  const id = "4bf92f3577b34da6a3ce929d0e0e4736";
  assert.equal(traceIdOf(`00-${id}-00f067aa0ba902b7-01`), id);
  assert.equal(traceIdOf(undefined), undefined);
  assert.equal(traceIdOf(`00-${id.toUpperCase()}-00f067aa0ba902b7-01`), undefined, "uppercase hex");
  assert.equal(traceIdOf(`00-${id}-00f067aa0ba902b7-1`), undefined, "short flags");
  assert.equal(traceIdOf(`00_${id}-00f067aa0ba902b7-01`), undefined, "wrong separator");
  assert.equal(traceIdOf(`00-${"0".repeat(32)}-00f067aa0ba902b7-01`), undefined, "all-zero trace id");
  assert.equal(traceIdOf(`00-${id}-00f067aa0ba902bz-01`), undefined, "non-hex parent id");
  const fresh = newTraceparent();
  assert.match(fresh, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  assert.equal(traceIdOf(fresh), fresh.slice(3, 35));
  assert.notEqual(newTraceparent(), fresh);
});
