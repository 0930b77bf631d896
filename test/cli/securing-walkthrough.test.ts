// The README's "From zero to a TLS + token broker" walkthrough, run as a newcomer would run it:
// its shell blocks in order (make a CA and certificates, a hashed token and a policy, start the
// broker, publish and tail with the CLI and with grpcurl), with only the ports, the store path
// and the program paths changed for a shared test machine.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { freePort } from "../support/mariadb.js";
import { CLI } from "../support/process.js";

const README = fileURLToPath(new URL("../../../README.md", import.meta.url));

/** The shell blocks (indented under list items) of the walkthrough, in order, dedented. */
function walkthrough(): string[] {
  const readme = readFileSync(README, "utf8");
  const start = readme.indexOf("### From zero to a TLS + token broker");
  assert.ok(start >= 0, "README has the walkthrough");
  const section = readme.slice(start, readme.indexOf("\n### ", start + 1));
  return [...section.matchAll(/^( *)```sh\n([\s\S]*?)^\1```$/gm)].map((m) =>
    m[2]!
      .split("\n")
      .map((l) => l.slice(m[1]!.length))
      .join("\n"),
  );
}

function grpcurlPath(): string | undefined {
  const local = fileURLToPath(new URL("../../../.tools/bin/grpcurl", import.meta.url));
  if (existsSync(local)) return local;
  for (const dir of (process.env.PATH ?? "").split(delimiter))
    if (dir && existsSync(join(dir, "grpcurl"))) return join(dir, "grpcurl");
  return undefined;
}

function bash(script: string, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile("bash", ["-euo", "pipefail", "-c", script], { cwd, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

test("a newcomer's walkthrough: CA, TLS + token broker, CLI and grpcurl", async (t) => {
  const grpcurl = grpcurlPath();
  if (grpcurl === undefined) {
    if (process.env.CI) assert.fail("grpcurl is missing: clients/go/scripts/setup.sh installs it");
    return t.skip("grpcurl is not installed (clients/go/scripts/setup.sh installs it)");
  }
  const [certs, token, serve, use] = walkthrough();
  assert.ok(certs && token && serve && use, "four shell blocks: certificates, token and policy, serve, use");
  const dir = mkdtempSync(join(tmpdir(), "nb-walkthrough-"));
  const made = await bash(`${certs}\n${token}\nprintf %s "$TOKEN" > token.txt`, dir);
  assert.equal(made.code, 0, made.stderr);
  const port = await freePort();
  const nervebus = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)}`;
  const serveLine = serve
    .replace(/\\\n\s*/g, "")
    .trim()
    .replace(/^nervebus /, "");
  const child = spawn(
    "bash",
    [
      "-c",
      `exec ${nervebus} ${serveLine} --listen 127.0.0.1:${port} --http-listen 127.0.0.1:${await freePort()} --store sqlite:${dir}/nb.db`,
    ],
    { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
  );
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
    const script = use
      .replaceAll("localhost:7070", `localhost:${port}`)
      .replace(/\$TOKEN\b/g, "$(cat token.txt)")
      .replace(/^nervebus /gm, `${nervebus} `)
      .replace(/^grpcurl /gm, `${JSON.stringify(grpcurl)} `);
    const used = await bash(script, dir);
    assert.equal(used.code, 0, used.stderr);
    // What the README's comments say each command prints.
    assert.match(used.stdout, /^published 1 messages to orders, seqs 1–1$/m);
    assert.match(used.stdout, /^1\thello$/m);
    assert.match(used.stdout, /"firstSeq": "2"/);
    // And what it says happens without the token, and in plaintext.
    const target = `localhost:${port}`;
    const noToken = await bash(
      `${JSON.stringify(grpcurl)} -cacert certs/ca.crt -d '{"topic":"orders","messages":[{"data":"aGVsbG8="}]}' ${target} nervebus.v1.PublisherService/SendPack`,
      dir,
    );
    assert.notEqual(noToken.code, 0);
    assert.match(
      noToken.stderr,
      /Unauthenticated[\s\S]*no credentials: send "authorization: Bearer <token>"/,
    );
    const plaintext = await bash(`${JSON.stringify(grpcurl)} -plaintext ${target} list`, dir);
    assert.notEqual(plaintext.code, 0, "plaintext does not get past the TLS handshake");
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
});
