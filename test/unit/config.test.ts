import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadConfig } from "../../src/config/index.js";

test("defaults < file < environment < flags", () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-config-"));
  const file = join(dir, "c.json");
  writeFileSync(file, JSON.stringify({ shards: 2, maxMessageBytes: "2MiB", heartbeatMs: "2s" }));
  const c = loadConfig({ shards: "8" }, { NERVEBUS_SHARDS: "6", NERVEBUS_TAIL_CACHE_BYTES: "1m" }, file);
  assert.equal(c.shards, 8);
  assert.equal(c.maxMessageBytes, 2 << 20);
  assert.equal(c.heartbeatMs, 2000);
  assert.equal(c.tailCacheBytes, 1 << 20);
  assert.equal(c.listen, "127.0.0.1:7070");
});

test("bad values name the flag, the variable or the file key, and the range", () => {
  assert.throws(() => loadConfig({ shards: "0" }, {}), /--shards: must be between 1 and 64, got 0/);
  assert.throws(
    () => loadConfig({}, { NERVEBUS_SHARDS: "many" }),
    /NERVEBUS_SHARDS: must be a whole number, got "many"/,
  );
  assert.throws(
    () => loadConfig({ "max-message-bytes": "3 parsecs" }, {}),
    /--max-message-bytes: must be a whole number \(e.g. 1048576 or 1MiB\)/,
  );
  assert.throws(() => loadConfig({ listen: "nowhere" }, {}), /--listen: must be HOST:PORT/);
  assert.throws(
    () => loadConfig({ "log-level": "loud" }, {}),
    /--log-level: must be one of debug, info, warn, error/,
  );
  const dir = mkdtempSync(join(tmpdir(), "nb-config-"));
  const file = join(dir, "c.json");
  writeFileSync(file, JSON.stringify({ shard: 2 }));
  assert.throws(() => loadConfig({}, {}, file), /unknown setting "shard"/);
  assert.throws(
    () => loadConfig({ "max-pack-bytes": "1024", "max-message-bytes": "2048" }, {}),
    /--max-pack-bytes \(1024\) must be ≥ --max-message-bytes \(2048\)/,
  );
});

test("a --config file that is not a JSON object of settings is refused, naming the file", () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-config-"));
  const file = join(dir, "c.json");
  // Before: null gave "Cannot convert undefined or null to object", an array "unknown setting
  // "0"", and a string each of its characters as unknown settings.
  for (const [text, got] of [
    ["null", "null"],
    ["[1, 2]", "an array"],
    ['"shards=8"', "a string"],
    ["8", "a number"],
  ]) {
    writeFileSync(file, text);
    assert.throws(
      () => loadConfig({}, {}, file),
      (err: Error) =>
        err.message ===
        `--config ${file}: must be a JSON object of settings (e.g. {"shards": 8}), got ${got}`,
      text,
    );
  }
  rmSync(dir, { recursive: true, force: true });
});

test("security settings that only make sense together are refused, naming the flags", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ "tls-cert": "c.pem" }, /--tls-cert and --tls-key go together/],
    [{ "tls-client-ca": "ca.pem" }, /--tls-client-ca needs --tls-cert and --tls-key/],
    [
      { "auth-jwks": "k.json", "auth-jwt-issuer": "https://id" },
      /--auth-jwks, --auth-jwt-issuer and --auth-jwt-audience go together/,
    ],
    [{ "auth-policy": "p.json" }, /--auth-policy needs a way to know principals/],
    [{ cluster: "true", "cluster-tls-ca": "ca.pem" }, /--cluster-tls-ca needs --cluster, --tls-cert/],
    [
      { "tls-cert": "c.pem", "tls-key": "k.pem", "cluster-tls-ca": "ca.pem" },
      /--cluster-tls-ca needs --cluster/,
    ],
    [{ "require-auth": "true", "auth-tokens": "t" }, /--require-auth: refusing to start without TLS/],
    [
      { "require-auth": "true", "tls-cert": "c.pem", "tls-key": "k.pem" },
      /--require-auth: refusing to start without authentication/,
    ],
  ];
  for (const [flags, message] of cases) assert.throws(() => loadConfig(flags, {}), message);
  const ok = loadConfig(
    { "require-auth": "true", "tls-cert": "c.pem", "tls-key": "k.pem" },
    { NERVEBUS_AUTH_TOKENS: "/etc/nervebus/tokens" },
  );
  assert.equal(ok.authTokens, "/etc/nervebus/tokens");
  assert.equal(ok.authJwtPrincipalClaim, "sub");
});

test("--memory-budget gives each part its share unless the part's own setting is given", () => {
  const MiB = 1 << 20;
  const parts = (c: ReturnType<typeof loadConfig>) => [
    c.packBytesInProgress,
    c.writeBufferBytes,
    c.tailCacheTotalBytes,
    c.readAheadBytes,
    c.leaseBytes,
    c.streamBufferBytes,
  ];
  const defaults = loadConfig({}, {});
  assert.equal(defaults.memoryBudget, 192 * MiB);
  assert.deepEqual(parts(defaults), [48 * MiB, 36 * MiB, 36 * MiB, 24 * MiB, 24 * MiB, 24 * MiB]);
  const sum = (c: ReturnType<typeof loadConfig>) => parts(c).reduce((a, b) => a + b, 0);
  assert.equal(sum(defaults), defaults.memoryBudget, "the shares add up to the budget");
  const big = loadConfig({ "memory-budget": "1GiB" }, {});
  assert.deepEqual(parts(big), [256 * MiB, 192 * MiB, 192 * MiB, 128 * MiB, 128 * MiB, 128 * MiB]);
  // An explicit setting wins, from any source; the others keep their shares.
  const mixed = loadConfig(
    { "memory-budget": "1GiB", "write-buffer-bytes": "10MiB" },
    { NERVEBUS_TAIL_CACHE_TOTAL_BYTES: "0" },
  );
  assert.deepEqual(parts(mixed), [256 * MiB, 10 * MiB, 0, 128 * MiB, 128 * MiB, 128 * MiB]);
});
