import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { NerveBusClient, NerveBusError, StatusCode } from "@nervebus/client";
import { TestBroker } from "./support/broker.js";
import { deferred, uniqueName } from "./support/helpers.js";

/** The repository's certificate script, from dist-test/test/. */
const MAKE_CERTS = fileURLToPath(new URL("../../../../scripts/make-certs.sh", import.meta.url));
const TOKEN = "ts-client-token-7f3a";

const dir = mkdtempSync(join(tmpdir(), "nervebus-ts-tls-"));
const pem = (name: string) => readFileSync(join(dir, name));
let tokenBroker: TestBroker;
let mtlsBroker: TestBroker;

before(async () => {
  execFileSync("bash", [MAKE_CERTS, dir, "ts-client"], { stdio: "ignore" });
  writeFileSync(join(dir, "tokens"), `${createHash("sha256").update(TOKEN).digest("hex")} ts-user\n`);
  writeFileSync(
    join(dir, "policy.json"),
    JSON.stringify({
      principals: {
        "ts-user": [{ allow: ["publish", "subscribe"], topics: ["ts-*"] }],
        "ts-client": [{ allow: ["publish", "subscribe"], topics: ["ts-*"] }],
      },
    }),
  );
  const tls = ["--tls-cert", join(dir, "server.crt"), "--tls-key", join(dir, "server.key")];
  const policy = ["--auth-policy", join(dir, "policy.json")];
  tokenBroker = await TestBroker.start([...tls, "--auth-tokens", join(dir, "tokens"), ...policy]);
  mtlsBroker = await TestBroker.start([...tls, "--tls-client-ca", join(dir, "ca.crt"), ...policy]);
});

after(async () => {
  await tokenBroker.dispose();
  await mtlsBroker.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** Publishes one message and receives it back on a new subscription. */
async function roundTrip(client: NerveBusClient): Promise<string> {
  const topic = uniqueName("ts-sec");
  await client.publish(topic, { data: "secret" });
  const got = deferred<string>();
  const sub = client.subscribe(topic, "s", (m) => got.resolve(Buffer.from(m.data).toString()), {
    start: "earliest",
  });
  try {
    return await got.promise;
  } finally {
    await sub.close();
  }
}

test("TLS + a token source: every call carries the token the source gives now", async () => {
  let calls = 0;
  const client = new NerveBusClient(tokenBroker.address, {
    tls: { ca: pem("ca.crt") },
    token: async () => {
      calls++;
      return TOKEN;
    },
  });
  try {
    assert.equal(await roundTrip(client), "secret");
    assert.ok(calls >= 2, `the token source ran ${calls} times`);
  } finally {
    await client.close();
  }
});

test("TLS without a token is UNAUTHENTICATED; a token over plaintext is refused by the client", async () => {
  const client = new NerveBusClient(tokenBroker.address, { tls: { ca: pem("ca.crt") } });
  try {
    await assert.rejects(
      client.publish(uniqueName("ts-sec"), { data: "x" }),
      (err) => err instanceof NerveBusError && err.code === StatusCode.UNAUTHENTICATED,
    );
  } finally {
    await client.close();
  }
  assert.throws(() => new NerveBusClient(tokenBroker.address, { token: TOKEN }), /over TLS only/);
});

test("mTLS: the client certificate is the principal", async () => {
  const client = new NerveBusClient(mtlsBroker.address, {
    tls: { ca: pem("ca.crt"), cert: pem("ts-client.crt"), key: pem("ts-client.key") },
  });
  try {
    assert.equal(await roundTrip(client), "secret");
    await assert.rejects(
      client.publish("elsewhere", { data: "x" }),
      (err) =>
        err instanceof NerveBusError &&
        err.code === StatusCode.PERMISSION_DENIED &&
        /"ts-client" \(certificate\)/.test(err.message),
    );
  } finally {
    await client.close();
  }
});
