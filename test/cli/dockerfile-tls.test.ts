// The container's own command with TLS and authentication files given as the README's "In
// Docker" section gives them (NERVEBUS_* variables), run here without Docker: the Dockerfile's
// last stage (ENV, ENTRYPOINT, CMD) is read and its command run on this machine's build, with
// /app/dist mapped to it. What the image adds beyond this (the files copied in, uid 999) is
// checked by building it, which CI does not do.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { tokenHash } from "../../src/auth/index.js";
import { freePort } from "../support/mariadb.js";
import { TestCa } from "../support/pki.js";
import { runCli } from "../support/process.js";

const DIST = fileURLToPath(new URL("../../", import.meta.url));
const REPO = fileURLToPath(new URL("../../../", import.meta.url));

/** The runtime stage of the Dockerfile: its ENV, ENTRYPOINT and CMD. */
function runtimeStage(): { env: Record<string, string>; command: string[] } {
  const text = readFileSync(join(REPO, "Dockerfile"), "utf8");
  const stage = text.split(/^FROM\s/m).at(-1)!;
  const env: Record<string, string> = {};
  for (const m of stage.matchAll(/^ENV\s+(\w+)=("([^"]*)"|(\S+))/gm)) env[m[1]!] = m[3] ?? m[4] ?? "";
  const json = (word: string) =>
    JSON.parse(new RegExp(`^${word}\\s+(\\[.*\\])$`, "m").exec(stage)![1]!) as string[];
  return { env, command: [...json("ENTRYPOINT"), ...json("CMD")] };
}

test("the Dockerfile's command serves TLS with token authentication when given the files", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-dockerfile-"));
  const ca = TestCa.create(dir);
  const server = ca.server("broker");
  const token = randomBytes(24).toString("hex");
  writeFileSync(join(dir, "tokens"), `${tokenHash(token)} ops\n`);
  writeFileSync(
    join(dir, "policy.json"),
    JSON.stringify({ principals: { ops: [{ allow: ["publish", "subscribe", "admin"], topics: ["*"] }] } }),
  );
  const { env, command } = runtimeStage();
  assert.equal(command[0], "node");
  const port = await freePort();
  // This machine's build for the image's /app/dist; a free port for 7070 and a temp store for
  // /data: the rest of the command is the image's.
  const args = command.slice(1).map((a) =>
    a
      .replace(/^\/app\/dist\//, DIST)
      .replace(/^0\.0\.0\.0:7070$/, `0.0.0.0:${port}`)
      .replace(/^sqlite:\/data\//, `sqlite:${dir}/`),
  );
  assert.ok(args.includes(`0.0.0.0:${port}`), `the image listens on every address: ${command.join(" ")}`);
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      ...env,
      // As in the README's `docker run`:
      NERVEBUS_TLS_CERT: server.cert,
      NERVEBUS_TLS_KEY: server.key,
      NERVEBUS_AUTH_TOKENS: join(dir, "tokens"),
      NERVEBUS_AUTH_POLICY: join(dir, "policy.json"),
      NERVEBUS_REQUIRE_AUTH: "true",
      // Not the image's default 7071: other brokers may be using it on this machine.
      NERVEBUS_HTTP_LISTEN: `127.0.0.1:${await freePort()}`,
    },
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    for (let i = 0; i < 200 && !/nervebus listening on/.test(out) && child.exitCode === null; i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.match(out, /nervebus listening on/, out);
    const address = `127.0.0.1:${port}`;
    const ok = await runCli(
      ["publish", "--server", address, "--tls-ca", ca.cert, "--topic", "orders", "--data", "hello"],
      "",
      { NERVEBUS_TOKEN: token },
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, "published 1 messages to orders, seqs 1–1\n");
    const plaintext = await runCli(["publish", "--server", address, "--topic", "orders", "--data", "x"]);
    assert.notEqual(plaintext.code, 0, "plaintext does not get through");
    const anonymous = await runCli([
      "publish",
      "--server",
      address,
      "--tls-ca",
      ca.cert,
      "--topic",
      "orders",
      "--data",
      "x",
    ]);
    assert.match(anonymous.stderr, /UNAUTHENTICATED/);
    assert.match(out, /"tls":true/);
    assert.doesNotMatch(out, /OPEN TO THE NETWORK/, "no exposure warning with TLS and authentication");
  } finally {
    child.kill("SIGTERM");
    assert.equal(await exited, 0, out.slice(-2000));
  }
});
