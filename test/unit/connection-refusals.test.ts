import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { ConnectionRefusals } from "../../src/api/connection-limits.js";

test("connection refusals: a flood gives one warning, a reminder per 30 s while it goes on, and one info line 30 s after the last refusal", () => {
  mock.timers.enable({ apis: ["setTimeout", "Date"], now: Date.parse("2026-12-07T03:00:00Z") });
  const provider = new MeterProvider();
  try {
    const lines: { level: string; msg: string; [k: string]: unknown }[] = [];
    const refusals = new ConnectionRefusals(
      "http",
      provider.getMeter("test").createCounter("nervebus_connections_refused"),
      (level, msg, fields) => lines.push({ level, msg, ...fields }),
    );
    // 100 connections over the cap every 100 ms for 65 s.
    for (let t = 0; t <= 65_000; t += 100) {
      for (let i = 0; i < 100; i++) refusals.count("limit");
      mock.timers.tick(100);
    }
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg, l.port, l.failures]),
      [
        ["warn", "connections refused or cut", "http", undefined],
        ["warn", "connections still refused or cut", "http", 30_001],
        ["warn", "connections still refused or cut", "http", 60_001],
      ],
    );
    assert.equal(lines[0]!.err, "over the port's cap of open connections");
    // Quiet from here: the end is logged once 30 s passed without a refusal, not before.
    mock.timers.tick(29_000);
    assert.equal(lines.length, 3);
    mock.timers.tick(2000);
    assert.deepEqual(
      lines.slice(3).map((l) => [l.level, l.msg, l.port, l.failures]),
      [["info", "no connection refused or cut for 30 s", "http", 65_100]],
    );
    // A new flood is a new warning.
    refusals.count("handshake_timeout");
    assert.deepEqual(lines.at(-1), {
      level: "warn",
      msg: "connections refused or cut",
      port: "http",
      err: "no TLS handshake and request within --handshake-timeout-ms",
    });
  } finally {
    mock.timers.reset();
    void provider.shutdown();
  }
});
