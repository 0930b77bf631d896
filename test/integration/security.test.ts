// TLS, mTLS, tokens, JWTs and the policy against a real broker over real TLS: a throwaway CA and
// certificates made with openssl, gRPC clients of grpc-js, HTTPS requests of node:https.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { PublishRequestSchema } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { tokenHash } from "../../src/auth/index.js";
import { type Config, loadConfig } from "../../src/config/index.js";
import { type NerveBus, startNerveBus } from "../../src/nervebus.js";
import type { Logger } from "../../src/telemetry/index.js";
import { type HealthClient, healthStatus, quietLog, TestClient } from "../support/broker.js";
import { epochSeconds, TestIssuer } from "../support/jwt.js";
import { type CertFiles, pem, TestCa } from "../support/pki.js";

const dir = mkdtempSync(join(tmpdir(), "nb-security-"));
const ca = TestCa.create(dir, "ca-one");
const otherCa = TestCa.create(dir, "ca-two");
const serverCert = ca.server("broker-one");

/** Bearer tokens by principal; the broker's file holds only their hashes. */
const TOKENS = {
  publisher: randomBytes(32).toString("hex"),
  reader: randomBytes(32).toString("hex"),
  ops: randomBytes(32).toString("hex"),
  nobody: randomBytes(32).toString("hex"),
};
const tokensFile = join(dir, "tokens");
writeFileSync(
  tokensFile,
  `# test tokens\n${Object.entries(TOKENS)
    .map(([who, t]) => `${tokenHash(t)} ${who}`)
    .join("\n")}\n`,
);

const issuer = new TestIssuer("ES256");
const rsaIssuer = new TestIssuer("RS256");
const strangerIssuer = new TestIssuer("ES256", issuer.kid);
const jwksFile = join(dir, "jwks.json");
writeFileSync(jwksFile, JSON.stringify({ keys: [issuer.jwk(), rsaIssuer.jwk()] }));
const ISSUER = "https://id.example";
const AUDIENCE = "nervebus";

const POLICY = {
  principals: {
    publisher: [{ allow: ["publish"], topics: ["orders"] }],
    reader: [{ allow: ["subscribe"], topics: ["orders"], subscriptions: ["billing"] }],
    ops: [{ allow: ["admin", "publish", "subscribe"], topics: ["*"] }],
    alice: [{ allow: ["publish", "subscribe", "admin"], topics: ["alice.*"] }],
    "spiffe://tests/bob": [{ allow: ["publish"], topics: ["bob"] }],
    "jwt-user": [{ allow: ["publish"], topics: ["orders"] }],
  },
};
const policyFile = join(dir, "policy.json");
writeFileSync(policyFile, JSON.stringify(POLICY));

/** Log lines the broker wrote, for the audit assertions. */
const logs: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
const capture: Logger = (level, msg, fields) => {
  logs.push({ level, msg, fields: fields ?? {} });
  quietLog(level, msg, fields);
};

/** A broker on 127.0.0.1:0 with a fresh SQLite file and these settings. */
async function start(overrides: Partial<Config>): Promise<NerveBus> {
  const config = {
    ...loadConfig({}, {}),
    listen: "127.0.0.1:0",
    httpListen: "127.0.0.1:0",
    store: `sqlite:${join(mkdtempSync(join(dir, "store-")), "nb.db")}`,
    shutdownGraceMs: 1000,
    securityReloadMs: 0,
    ...overrides,
  };
  return startNerveBus(config, capture);
}

const TLS_AND_AUTH: Partial<Config> = {
  tlsCert: serverCert.cert,
  tlsKey: serverCert.key,
  authTokens: tokensFile,
  authJwks: jwksFile,
  authJwtIssuer: ISSUER,
  authJwtAudience: AUDIENCE,
  authPolicy: policyFile,
};

/** Channel credentials: TLS trusting `roots` (default the test CA), a client certificate, a token. */
function credentials(
  options: { roots?: string; cert?: CertFiles; token?: string | (() => string) } = {},
): grpc.ChannelCredentials {
  const ssl = grpc.credentials.createSsl(
    pem(options.roots ?? ca.cert),
    options.cert ? pem(options.cert.key) : null,
    options.cert ? pem(options.cert.cert) : null,
  );
  const token = options.token;
  if (token === undefined) return ssl;
  return grpc.credentials.combineChannelCredentials(
    ssl,
    grpc.credentials.createFromMetadataGenerator((_p, cb) => {
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${typeof token === "string" ? token : token()}`);
      cb(null, md);
    }),
  );
}

const open: TestClient[] = [];
function client(bus: NerveBus, creds: grpc.ChannelCredentials): TestClient {
  const c = new TestClient(bus.address, {}, creds);
  open.push(c);
  return c;
}

/** Awaits `p`, which must fail with `code` and details matching `details`. */
async function rejects(p: Promise<unknown>, code: grpc.status, details?: RegExp): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    assert.equal(e.code, code, `expected ${grpc.status[code]}, got ${grpc.status[e.code]}: ${e.details}`);
    if (details) assert.match(e.details, details);
    return e;
  }
  assert.fail(`expected ${grpc.status[code]}, but the call succeeded`);
}

/** The status a Receive stream ends with, after subscribing to topic/subscription. */
async function receiveStatus(c: TestClient, topic: string, subscription: string): Promise<grpc.ServiceError> {
  const stream = c.receive(topic, subscription);
  await stream.until(() => stream.ended, 10_000, "stream end");
  assert.ok(stream.error, "the stream ended without an error");
  return stream.error;
}

/** How a Publish stream on `topic` opens: "opened" (credit granted) or the status it ended with. */
async function publishStreamStatus(c: TestClient, topic: string): Promise<"opened" | grpc.ServiceError> {
  const call = c.publisher.publish();
  const outcome = new Promise<"opened" | grpc.ServiceError>((resolve) => {
    call.on("data", () => resolve("opened"));
    call.on("error", (err: grpc.ServiceError) => resolve(err));
  });
  call.write(create(PublishRequestSchema, { open: { topic } }));
  const result = await outcome;
  call.cancel();
  return result;
}

/** An HTTPS request to the broker's HTTP port. */
function https(
  bus: NerveBus,
  path: string,
  options: { method?: string; token?: string; cert?: CertFiles; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const [host, port] = [bus.httpAddress!.split(":")[0], Number(bus.httpAddress!.split(":")[1])];
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        path,
        method: options.method ?? "GET",
        ca: pem(ca.cert),
        ...(options.cert ? { cert: pem(options.cert.cert), key: pem(options.cert.key) } : {}),
        headers: {
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...options.headers,
        },
      },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => {
          body += d.toString();
        });
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** The subject CN of the certificate the broker's gRPC port presents now. */
function presentedCn(bus: NerveBus, roots: string): Promise<string> {
  const [host, port] = [bus.address.split(":")[0]!, Number(bus.address.split(":")[1])];
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      { host, port, servername: "localhost", ca: pem(roots), ALPNProtocols: ["h2"] },
      () => {
        const cn = socket.getPeerCertificate().subject.CN as string;
        socket.destroy();
        resolve(cn);
      },
    );
    socket.on("error", reject);
  });
}

let bus: NerveBus;
before(async () => {
  bus = await start(TLS_AND_AUTH);
});
after(async () => {
  for (const c of open) c.close();
  await bus.stop();
});

test("with TLS on, a plaintext client is refused on both ports and a TLS client is served", async () => {
  const plain = client(bus, grpc.credentials.createInsecure());
  await rejects(plain.publish("orders", ["x"], 3000), grpc.status.UNAVAILABLE);
  const http = await fetch(`http://${bus.httpAddress}/healthz`).then(
    (r) => `answered ${r.status}`,
    (err: Error) => `refused: ${err.message}`,
  );
  assert.match(http, /^refused/, "the HTTP port answered plaintext");
  const secure = client(bus, credentials({ token: TOKENS.publisher }));
  const r = await secure.publish("orders", ["over tls"]);
  assert.equal(r.firstSeq, 1n);
});

test("health stays open over TLS: gRPC health and /healthz answer without credentials", async () => {
  const Health = grpc.makeGenericClientConstructor(healthService, "Health");
  const health = new Health(bus.address, credentials()) as unknown as HealthClient;
  try {
    assert.equal(await healthStatus(health), "SERVING");
  } finally {
    health.close();
  }
  assert.equal((await https(bus, "/healthz")).status, 200);
});

test("without a token every RPC is UNAUTHENTICATED, and an unknown token too", async () => {
  const anonymous = client(bus, credentials());
  await rejects(anonymous.publish("orders", ["x"]), grpc.status.UNAUTHENTICATED, /no credentials/);
  await rejects(anonymous.adminCall("listTopics", {}), grpc.status.UNAUTHENTICATED);
  const stream = await receiveStatus(anonymous, "orders", "billing");
  assert.equal(stream.code, grpc.status.UNAUTHENTICATED);
  const stranger = client(bus, credentials({ token: "not-a-token" }));
  await rejects(stranger.publish("orders", ["x"]), grpc.status.UNAUTHENTICATED, /not a known token/);
  const refusals = logs.filter((l) => l.msg === "audit" && l.fields.outcome === "unauthenticated");
  assert.ok(refusals.length >= 4, "each refusal has an audit line");
  assert.ok(refusals.some((l) => l.fields.method === "Receive"));
});

test("a token without the right gets PERMISSION_DENIED naming principal, action and topic", async () => {
  const reader = client(bus, credentials({ token: TOKENS.reader }));
  const publisher = client(bus, credentials({ token: TOKENS.publisher }));
  const nobody = client(bus, credentials({ token: TOKENS.nobody }));
  await rejects(
    reader.publish("orders", ["x"]),
    grpc.status.PERMISSION_DENIED,
    /principal "reader" \(token\) may not publish to topic "orders"/,
  );
  const sub = await receiveStatus(publisher, "orders", "billing");
  assert.equal(sub.code, grpc.status.PERMISSION_DENIED);
  assert.match(
    sub.details,
    /principal "publisher" \(token\) may not subscribe to subscription "billing" of topic "orders"/,
  );
  // The reader's subscribe right covers one subscription only.
  const other = await receiveStatus(reader, "orders", "audit");
  assert.equal(other.code, grpc.status.PERMISSION_DENIED);
  await rejects(
    publisher.adminCall("deleteTopic", { name: "orders" }),
    grpc.status.PERMISSION_DENIED,
    /principal "publisher" \(token\) may not administer topic "orders"/,
  );
  await rejects(
    nobody.adminCall("listTopics", {}),
    grpc.status.PERMISSION_DENIED,
    /may not administer any topic/,
  );
  const denied = logs.filter((l) => l.msg === "audit" && l.fields.outcome === "permission_denied");
  for (const action of ["publish", "subscribe", "admin"])
    assert.ok(
      denied.some(
        (l) => l.fields.action === action && l.fields.principal !== undefined && l.fields.topic === "orders",
      ),
      `an audit line for the refused ${action}`,
    );
});

test("a Publish stream needs the publish right on its topic, checked as it opens", async () => {
  const anonymous = await publishStreamStatus(client(bus, credentials()), "orders");
  assert.equal(anonymous !== "opened" && anonymous.code, grpc.status.UNAUTHENTICATED);
  const reader = await publishStreamStatus(client(bus, credentials({ token: TOKENS.reader })), "orders");
  assert.ok(reader !== "opened");
  assert.equal(reader.code, grpc.status.PERMISSION_DENIED);
  assert.match(reader.details, /principal "reader" \(token\) may not publish to topic "orders"/);
  assert.equal(
    await publishStreamStatus(client(bus, credentials({ token: TOKENS.publisher })), "orders"),
    "opened",
  );
});

test("each right allows what it names: publish, subscribe on its subscription, admin with an audit line", async () => {
  const publisher = client(bus, credentials({ token: TOKENS.publisher }));
  const reader = client(bus, credentials({ token: TOKENS.reader }));
  const ops = client(bus, credentials({ token: TOKENS.ops }));
  const stream = reader.receive("orders", "billing", { from: "earliest" });
  await publisher.publish("orders", ["for billing"]);
  await stream.until(() => stream.deliveries.some((d) => Buffer.from(d.data).toString() === "for billing"));
  stream.cancel();
  await ops.adminCall("createTopic", { topic: { name: "ops.made" } });
  const listed = await ops.adminCall("listTopics", {});
  assert.ok(listed.topics.some((t) => t.name === "ops.made"));
  const line = logs.find((l) => l.msg === "audit" && l.fields.method === "CreateTopic");
  assert.ok(line, "CreateTopic has an audit line");
  assert.equal(line.fields.principal, "ops");
  assert.equal(line.fields.outcome, "ok");
  assert.equal(line.fields.topic, "ops.made");
});

test("admin answers show only what the caller may administer", async () => {
  const ops = client(bus, credentials({ token: TOKENS.ops }));
  await ops.adminCall("createTopic", { topic: { name: "alice.visible" } });
  const aliceCert = ca.client("alice");
  const mtls = await start({ ...TLS_AND_AUTH, tlsClientCa: ca.cert });
  try {
    const opsThere = client(mtls, credentials({ token: TOKENS.ops, cert: aliceCert }));
    await opsThere.adminCall("createTopic", { topic: { name: "alice.one" } });
    await opsThere.adminCall("createTopic", { topic: { name: "hidden" } });
    const alice = client(mtls, credentials({ cert: aliceCert }));
    const names = (await alice.adminCall("listTopics", {})).topics.map((t) => t.name);
    assert.deepEqual(names, ["alice.one"]);
  } finally {
    await mtls.stop();
  }
});

test("a subscription may dead-letter only into a topic its creator may publish to", async () => {
  const aliceCert = ca.client("alice", { file: "alice-dlq" });
  const mtls = await start({ ...TLS_AND_AUTH, tlsClientCa: ca.cert });
  try {
    const alice = client(mtls, credentials({ cert: aliceCert }));
    await alice.adminCall("createTopic", { topic: { name: "alice.in" } });
    await rejects(
      alice.adminCall("createSubscription", {
        subscription: { topic: "alice.in", name: "s", deadLetterTopic: "orders" },
      }),
      grpc.status.PERMISSION_DENIED,
      /may not publish to topic "orders"/,
    );
    await alice.adminCall("createSubscription", {
      subscription: { topic: "alice.in", name: "s", deadLetterTopic: "alice.dead" },
    });
  } finally {
    await mtls.stop();
  }
});

test("JWTs: a valid one is a principal; wrong audience, wrong issuer, expired, not yet valid, foreign key and alg none are refused", async () => {
  const claims = { iss: ISSUER, aud: AUDIENCE, sub: "jwt-user", exp: epochSeconds(300) };
  for (const signer of [issuer, rsaIssuer]) {
    const ok = client(bus, credentials({ token: signer.sign(claims) }));
    await ok.publish("orders", [`from ${signer.alg}`]);
  }
  const audienceList = client(
    bus,
    credentials({ token: issuer.sign({ ...claims, aud: ["other", AUDIENCE] }) }),
  );
  await audienceList.publish("orders", ["audience list"]);
  const bad: [string, string, RegExp][] = [
    [
      "wrong audience",
      issuer.sign({ ...claims, aud: "other" }),
      /audience "other" does not include "nervebus"/,
    ],
    [
      "wrong issuer",
      issuer.sign({ ...claims, iss: "https://evil.example" }),
      /issuer "https:\/\/evil.example"/,
    ],
    ["expired", issuer.sign({ ...claims, exp: epochSeconds(-3600) }), /expired at/],
    ["no expiry", issuer.sign({ iss: ISSUER, aud: AUDIENCE, sub: "jwt-user" }), /no exp/],
    ["not yet valid", issuer.sign({ ...claims, nbf: epochSeconds(3600) }), /not valid before/],
    ["foreign key", strangerIssuer.sign(claims), /signature does not verify/],
    ["alg none", `${issuer.sign(claims, { alg: "none" }).split(".").slice(0, 2).join(".")}.`, /alg "none"/],
  ];
  for (const [what, token, reason] of bad) {
    const c = client(bus, credentials({ token }));
    const err = await rejects(c.publish("orders", ["x"]), grpc.status.UNAUTHENTICATED);
    assert.match(err.details, reason, what);
  }
  // A valid JWT of a principal without the right: PERMISSION_DENIED, naming how it was known.
  const denied = client(bus, credentials({ token: issuer.sign(claims) }));
  await rejects(denied.publish("elsewhere", ["x"]), grpc.status.PERMISSION_DENIED, /"jwt-user" \(jwt\)/);
});

test("mTLS: a certificate is required and its CN (or URI SAN) is the principal", async () => {
  const mtls = await start({
    tlsCert: serverCert.cert,
    tlsKey: serverCert.key,
    tlsClientCa: ca.cert,
    authPolicy: policyFile,
  });
  try {
    const noCert = client(mtls, credentials());
    await rejects(noCert.publish("alice.x", ["x"], 3000), grpc.status.UNAVAILABLE);
    const foreign = client(mtls, credentials({ cert: otherCa.client("alice", { file: "alice-foreign" }) }));
    await rejects(foreign.publish("alice.x", ["x"], 3000), grpc.status.UNAVAILABLE);
    const alice = client(mtls, credentials({ cert: ca.client("alice", { file: "alice-mtls" }) }));
    assert.equal((await alice.publish("alice.x", ["hello"])).firstSeq, 1n);
    await rejects(
      alice.publish("orders", ["x"]),
      grpc.status.PERMISSION_DENIED,
      /principal "alice" \(certificate\) may not publish to topic "orders"/,
    );
    const bob = client(
      mtls,
      credentials({ cert: ca.client(undefined, { uri: "spiffe://tests/bob", file: "bob" }) }),
    );
    await bob.publish("bob", ["from a SAN-only certificate"]);
    // The HTTP port asks for the same certificate and knows the same principal.
    const status = await https(mtls, "/api/status", { cert: ca.client("alice", { file: "alice-http" }) });
    assert.equal(status.status, 200, status.body);
    const topics = (JSON.parse(status.body) as { topics: { name: string }[] }).topics.map((t) => t.name);
    assert.deepEqual(topics, ["alice.x"]);
    assert.equal((await https(mtls, "/api/status")).status, 401);
    assert.equal((await https(mtls, "/healthz")).status, 200);
  } finally {
    await mtls.stop();
  }
});

test("HTTP port: the same tokens and policy, 401 without credentials, 403 without the right, audited pause", async () => {
  const ops = client(bus, credentials({ token: TOKENS.ops }));
  await ops.publish("orders", ["so the topic exists"]);
  await ops.adminCall("createSubscription", { subscription: { topic: "orders", name: "http-sub" } });
  const none = await https(bus, "/api/status");
  assert.equal(none.status, 401);
  assert.match(String(none.headers["www-authenticate"]), /^Bearer/);
  assert.equal((await https(bus, "/api/status", { token: TOKENS.publisher })).status, 403);
  assert.equal((await https(bus, "/metrics", { token: TOKENS.publisher })).status, 403);
  const status = await https(bus, "/api/status", { token: TOKENS.ops });
  assert.equal(status.status, 200);
  assert.ok(
    (JSON.parse(status.body) as { topics: { name: string }[] }).topics.some((t) => t.name === "orders"),
  );
  assert.equal((await https(bus, "/metrics", { token: TOKENS.ops })).status, 200);
  const pause = (token: string) =>
    https(bus, "/api/topics/orders/subscriptions/http-sub/pause", {
      method: "POST",
      token,
      headers: { "x-nervebus-request": "1" },
    });
  assert.equal((await pause(TOKENS.reader)).status, 403);
  const paused = await pause(TOKENS.ops);
  assert.equal(paused.status, 200, paused.body);
  const line = logs.find(
    (l) => l.msg === "audit" && l.fields.method === "api/pause" && l.fields.outcome === "ok",
  );
  assert.ok(line, "the pause has an audit line");
  assert.equal(line.fields.principal, "ops");
  assert.equal(line.fields.subscription, "http-sub");
});

test("a rotated certificate and a reloaded policy take effect without a restart, and an open stream keeps going", async () => {
  const certFiles = { cert: join(dir, "rotating.crt"), key: join(dir, "rotating.key") };
  const policyPath = join(dir, "rotating-policy.json");
  copyFileSync(serverCert.cert, certFiles.cert);
  copyFileSync(serverCert.key, certFiles.key);
  writeFileSync(policyPath, JSON.stringify(POLICY));
  const rotating = await start({
    ...TLS_AND_AUTH,
    tlsCert: certFiles.cert,
    tlsKey: certFiles.key,
    authPolicy: policyPath,
  });
  try {
    const ops = client(rotating, credentials({ token: TOKENS.ops }));
    const reader = client(rotating, credentials({ token: TOKENS.reader }));
    const stream = reader.receive("orders", "billing", { from: "earliest" });
    await ops.publish("orders", ["before"]);
    await stream.until(() => stream.deliveries.length === 1, 20_000, "the first delivery");
    assert.equal(await presentedCn(rotating, ca.cert), "broker-one");

    // A certificate of another CA replaces the files; a client trusting only that CA is
    // refused until the broker reloads, then served, without a restart.
    const next = otherCa.server("broker-two");
    const trustsNext = client(rotating, credentials({ roots: otherCa.cert, token: TOKENS.ops }));
    copyFileSync(next.cert, certFiles.cert);
    copyFileSync(next.key, certFiles.key);
    await rejects(trustsNext.publish("orders", ["x"], 3000), grpc.status.UNAVAILABLE);
    // The reader loses its right to the subscription in the same reload.
    writeFileSync(policyPath, JSON.stringify({ principals: { ...POLICY.principals, reader: [] } }));
    const report = rotating.reloadSecurity();
    assert.deepEqual(report.errors, []);
    assert.deepEqual([...report.changed].sort(), ["tls", policyPath].sort());
    assert.equal(await presentedCn(rotating, otherCa.cert), "broker-two");
    const fresh = client(rotating, credentials({ roots: otherCa.cert, token: TOKENS.ops }));
    await fresh.publish("orders", ["after"]);

    // The open stream (its connection made with the old certificate, its subscribe granted by
    // the old policy) still gets the message published after both changed.
    await stream.until(() => stream.deliveries.length === 2, 20_000, "the delivery after the reload");
    assert.equal(stream.error, undefined);
    const readerNow = client(rotating, credentials({ roots: otherCa.cert, token: TOKENS.reader }));
    const refused = await receiveStatus(readerNow, "orders", "billing");
    assert.equal(refused.code, grpc.status.PERMISSION_DENIED);

    // A broken policy file is refused with its line, and the one in use stays.
    writeFileSync(
      policyPath,
      '{\n  "principals": {\n    "ops": [ { "allow": ["everything"], "topics": ["*"] } ]\n  }\n}\n',
    );
    const broken = rotating.reloadSecurity();
    assert.equal(broken.changed.length, 0);
    assert.match(
      broken.errors[0] ?? "",
      /--auth-policy .*rotating-policy\.json principals\.ops\[0\]\.allow\[0\]: "everything" is not an action/,
    );
    await fresh.publish("orders", ["still allowed"]);
    stream.cancel();
  } finally {
    await rotating.stop();
  }
});

test("start-up refuses bad files, naming the flag, the file and the line or key", async () => {
  const badTokens = join(dir, "bad-tokens");
  writeFileSync(badTokens, `# ok\n${tokenHash("a")} one\nsecret-token two\n`);
  await assert.rejects(
    start({ authTokens: badTokens }),
    /--auth-tokens .*bad-tokens line 3: must start with the SHA-256/,
  );
  const badJson = join(dir, "bad-policy.json");
  writeFileSync(
    badJson,
    '{\n  "principals": {\n    "a": [ { "allow": ["publish"], "topics": ["x"] }, ]\n  }\n}\n',
  );
  await assert.rejects(
    start({ authTokens: tokensFile, authPolicy: badJson }),
    /--auth-policy .*bad-policy\.json line 3 column \d+: not valid JSON/,
  );
  await assert.rejects(
    start({ tlsCert: serverCert.cert, tlsKey: ca.client("mismatch").key }),
    /--tls-key .*mismatch\.key: does not fit --tls-cert/,
  );
  const privateJwks = join(dir, "private-jwks.json");
  const { generateKeyPairSync } = await import("node:crypto");
  const jwk = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" });
  writeFileSync(privateJwks, JSON.stringify({ keys: [jwk] }));
  await assert.rejects(
    start({ authJwks: privateJwks, authJwtIssuer: ISSUER, authJwtAudience: AUDIENCE }),
    /--auth-jwks .*private-jwks\.json keys\[0\]: is a private key/,
  );
});
