// The CLI against a broker process with mTLS, tokens and a policy: the connection flags, the
// NERVEBUS_TOKEN variable, a policy changed on disk and reloaded by SIGHUP, and --require-auth.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { tokenHash } from "../../src/auth/index.js";
import { TestCa } from "../support/pki.js";
import { type BrokerProcess, runCli, spawnBroker } from "../support/process.js";

const dir = mkdtempSync(join(tmpdir(), "nb-cli-security-"));
const ca = TestCa.create(dir);
const server = ca.server("broker");
const cli = ca.client("cli-user");
const writerToken = randomBytes(24).toString("hex");
const policyFile = join(dir, "policy.json");
const policy = (writerTopics: string[]) =>
  JSON.stringify({
    principals: {
      writer: [{ allow: ["publish"], topics: writerTopics }],
      "cli-user": [{ allow: ["admin", "publish"], topics: ["cli.*"] }],
    },
  });

let broker: BrokerProcess;
before(async () => {
  writeFileSync(join(dir, "tokens"), `${tokenHash(writerToken)} writer\n`);
  writeFileSync(policyFile, policy(["orders"]));
  broker = await spawnBroker([
    "--store",
    `sqlite:${join(dir, "nb.db")}`,
    "--tls-cert",
    server.cert,
    "--tls-key",
    server.key,
    "--tls-client-ca",
    ca.cert,
    "--auth-tokens",
    join(dir, "tokens"),
    "--auth-policy",
    policyFile,
    "--security-reload-ms",
    "0",
    "--require-auth",
  ]);
});
after(async () => {
  broker.child.kill("SIGTERM");
  assert.equal(await broker.exited, 0);
});

/** The connection flags of a CLI call: the test CA, the CLI's client certificate. */
const tls = () => [
  "--server",
  broker.address,
  "--tls-ca",
  ca.cert,
  "--tls-cert",
  cli.cert,
  "--tls-key",
  cli.key,
];

test("the CLI connects with TLS, a client certificate and a token from --token or NERVEBUS_TOKEN", async () => {
  const byFlag = await runCli([
    "publish",
    ...tls(),
    "--token",
    writerToken,
    "--topic",
    "orders",
    "--data",
    "a",
  ]);
  assert.equal(byFlag.code, 0, byFlag.stderr);
  const byEnv = await runCli(["publish", ...tls(), "--topic", "orders", "--data", "b"], "", {
    NERVEBUS_TOKEN: writerToken,
  });
  assert.equal(byEnv.code, 0, byEnv.stderr);
  assert.equal(byEnv.stdout, "published 1 messages to orders, seqs 2–2\n");
  // Without a token the certificate's CN is the principal.
  const byCert = await runCli(["topic", "create", "cli.made", ...tls()]);
  assert.equal(byCert.code, 0, byCert.stderr);
  const denied = await runCli(["topic", "delete", "orders", ...tls()]);
  assert.equal(denied.code, 2);
  assert.match(
    denied.stderr,
    /PERMISSION_DENIED: principal "cli-user" \(certificate\) may not administer topic "orders"/,
  );
  const badToken = await runCli([
    "publish",
    ...tls(),
    "--token",
    "wrong",
    "--topic",
    "orders",
    "--data",
    "x",
  ]);
  assert.equal(badToken.code, 2);
  assert.match(badToken.stderr, /UNAUTHENTICATED: bearer token: not a known token/);
  const plaintextToken = await runCli([
    "publish",
    "--server",
    broker.address,
    "--token",
    writerToken,
    "--topic",
    "t",
  ]);
  assert.equal(plaintextToken.code, 2);
  assert.match(plaintextToken.stderr, /sent over TLS only/);
});

test("SIGHUP reloads the policy: the next call is judged by the new one", async () => {
  const publish = () =>
    runCli(["publish", ...tls(), "--token", writerToken, "--topic", "orders", "--data", "x"]);
  assert.equal((await publish()).code, 0);
  writeFileSync(policyFile, policy(["elsewhere"]));
  const before = broker.stderr().split("security files reloaded").length;
  broker.child.kill("SIGHUP");
  const deadline = Date.now() + 10_000;
  while (broker.stderr().split("security files reloaded").length === before) {
    assert.ok(Date.now() < deadline, `no reload logged:\n${broker.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const refused = await publish();
  assert.equal(refused.code, 2);
  assert.match(
    refused.stderr,
    /PERMISSION_DENIED: principal "writer" \(token\) may not publish to topic "orders"/,
  );
  writeFileSync(policyFile, policy(["orders"]));
  broker.child.kill("SIGHUP");
});

test("--require-auth refuses to start a broker without TLS or without authentication", async () => {
  const store = `sqlite:${join(dir, "refused.db")}`;
  const noTls = await runCli(["serve", "--listen", "127.0.0.1:0", "--store", store, "--require-auth"]);
  assert.equal(noTls.code, 2);
  assert.match(noTls.stderr, /--require-auth: refusing to start without TLS/);
  const noAuth = await runCli([
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--store",
    store,
    "--require-auth",
    "--tls-cert",
    server.cert,
    "--tls-key",
    server.key,
  ]);
  assert.equal(noAuth.code, 2);
  assert.match(noAuth.stderr, /--require-auth: refusing to start without authentication/);
});
