import assert from "node:assert/strict";
import { test } from "node:test";
import { checkHostPort, parseDuration } from "../../src/config/index.js";
import { BYTE_UNITS, parseQuantity } from "../../src/config/units.js";

test("durations: units from ms to days, case and spaces ignored, fractions kept", () => {
  assert.equal(parseDuration("250"), 250);
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration(" 5 M "), 300_000);
  assert.equal(parseDuration("2h"), 7_200_000);
  assert.equal(parseDuration("7d"), 604_800_000);
  assert.equal(parseDuration("1.5ms"), 1.5);
  for (const bad of ["", "s", "-1s", "30 sec", "1e3", "5constructor", "5__proto__"])
    assert.equal(parseDuration(bad), undefined, JSON.stringify(bad));
});

test("sizes: binary units", () => {
  assert.equal(parseQuantity("1MiB", BYTE_UNITS), 1 << 20);
  assert.equal(parseQuantity("16 mb", BYTE_UNITS), 16 << 20);
  assert.equal(parseQuantity("2k", BYTE_UNITS), 2048);
  assert.equal(parseQuantity("2ms", BYTE_UNITS), undefined);
});

test("HOST:PORT, and off where a listener may be switched off", () => {
  checkHostPort("listen", "127.0.0.1:0");
  checkHostPort("listen", "[::1]:7070");
  checkHostPort("http-listen", "off", true);
  assert.throws(
    () => checkHostPort("listen", "off"),
    /^NerveBusError: --listen: must be HOST:PORT, got "off"$/,
  );
  assert.throws(
    () => checkHostPort("http-listen", "7071", true),
    /^NerveBusError: --http-listen: must be HOST:PORT or off, got "7071"$/,
  );
  assert.throws(() => checkHostPort("server", "host:"), /--server: must be HOST:PORT/);
});
