// Connections to the HTTP status port (--http-listen) that hold a file descriptor without being a
// client: raw TCP that sends nothing or part of a request, HTTPS that never does its handshake,
// connections answered by the broker that never close their side, and simply more connections
// than the process can hold. Node's own bounds came too late or never: headers 60 s (checked
// every 30 s), a TLS handshake 120 s, and a connection answered from clientError (400, 408, 431)
// or CONNECT (405) stayed open until the client closed it. The broker is its own process: its
// descriptors are counted in /proc, as for the gRPC port (silent-connections.test.ts).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { TestClient } from "../support/broker.js";
import {
  openFds,
  refusedIn,
  SilentClients,
  until,
  untilCounted,
  untilEnded,
  untilHeld,
  untilReleased,
} from "../support/connections.js";
import { pem, TestCa } from "../support/pki.js";
import { type BrokerProcess, httpAddressOf, spawnBroker } from "../support/process.js";

const dir = mkdtempSync(join(tmpdir(), "nb-http-conn-"));
const ca = TestCa.create(dir);
const serverCert = ca.server("broker");
const TLS_FLAGS = ["--tls-cert", serverCert.cert, "--tls-key", serverCert.key];
/** TLS as an HTTPS client speaks it (the test CA trusted). */
const TLS_CLIENT = { ca: pem(ca.cert) };
const brokers: BrokerProcess[] = [];
const clients = new SilentClients();

after(async () => {
  clients.destroyAll();
  for (const b of brokers) {
    b.child.kill("SIGKILL");
    await b.exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

async function broker(name: string, args: string[]): Promise<{ b: BrokerProcess; http: string }> {
  const b = await spawnBroker(["--store", `sqlite:${join(dir, `${name}.db`)}`, ...args]);
  brokers.push(b);
  return { b, http: await httpAddressOf(b) };
}

/** GET `path` on a connection of its own (closed after the answer), over HTTPS with `tls`. */
function get(address: string, path: string, tls = false): Promise<{ status: number; body: string }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.split(":").pop())];
  const options = { host, port, path, agent: false, timeout: 5000, ...(tls ? { ca: pem(ca.cert) } : {}) };
  return new Promise((resolve, reject) => {
    const req = (tls ? httpsRequest : httpRequest)(options, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${path}: no answer within 5 s`)));
    req.on("error", reject);
    req.end();
  });
}

/** How many connections of `port` the broker refused or cut for `reason`, as /metrics says. */
async function refused(http: string, port: "grpc" | "http", reason: string, tls = false): Promise<number> {
  return refusedIn((await get(http, "/metrics", tls)).body, port, reason);
}

const REQUEST_LINE = "GET /healthz HTTP/1.1\r\n";

test("HTTP: connections that send nothing, or part of a request line or of the headers, are closed after --handshake-timeout-ms; a partial request gets 408", async () => {
  const { b, http } = await broker("plain", [
    "--handshake-timeout-ms",
    "1000",
    "--http-max-connections",
    "1000",
  ]);
  const base = openFds(b);
  const silent = await clients.open(http, 200, "");
  const partial = [
    ...(await clients.open(http, 50, REQUEST_LINE.slice(0, 10))),
    ...(await clients.open(http, 50, `${REQUEST_LINE}host: ${http}\r\nx-slow: 1`)),
  ];
  await untilHeld(b, base, 300);
  await untilReleased(b, base, 10_000);
  await untilEnded([...silent, ...partial], 5000);
  const answers = new Set(partial.map((s) => s.received.split("\r\n")[0]));
  assert.deepEqual([...answers], ["HTTP/1.1 408 Request Timeout"], "a partial request is answered 408");
  assert.match(partial[0]!.received, /"error":".*--handshake-timeout-ms/);
  // A client that sends its request in time is served.
  assert.equal((await get(http, "/healthz")).status, 200);
  assert.equal(await refused(http, "http", "handshake_timeout"), 300);
});

test("HTTP: a kept-alive connection whose next request's headers do not come in time is cut after --handshake-timeout-ms", async () => {
  // Before, the first request was bounded and the ones after it on a kept-alive connection only
  // by node's header timeout: 60 s, checked every 30 s. (No 408: an answer was written on it.)
  const { b, http } = await broker("keepalive", ["--handshake-timeout-ms", "1000"]);
  const base = openFds(b);
  const slow = await clients.open(
    http,
    20,
    `${REQUEST_LINE}host: ${http}\r\n\r\n${REQUEST_LINE}host: ${http}\r\nx-slow: 1`,
  );
  await untilHeld(b, base, 20);
  await untilReleased(b, base, 10_000);
  await untilEnded(slow, 5000);
  for (const s of slow) {
    assert.deepEqual(s.received.match(/^HTTP\/1\.1 \d+ [^\r]*/gm), ["HTTP/1.1 200 OK"], s.received);
  }
  assert.equal(await refused(http, "http", "handshake_timeout"), 20);
});

test("HTTPS: connections that never start the TLS handshake, or finish it and send no request or part of one, are closed after --handshake-timeout-ms", async () => {
  const { b, http } = await broker("tls", [
    ...TLS_FLAGS,
    "--handshake-timeout-ms",
    "1000",
    "--http-max-connections",
    "1000",
  ]);
  const base = openFds(b);
  const silent = [...(await clients.open(http, 200, "")), ...(await clients.open(http, 100, "", TLS_CLIENT))];
  const partial = await clients.open(http, 50, REQUEST_LINE, TLS_CLIENT);
  await untilHeld(b, base, 350);
  await untilReleased(b, base, 10_000);
  await untilEnded([...silent, ...partial], 5000);
  assert.ok(
    partial.every((s) => s.received.startsWith("HTTP/1.1 408 ")),
    "a partial request is answered 408",
  );
  assert.equal((await get(http, "/healthz", true)).status, 200);
  assert.equal(await refused(http, "http", "handshake_timeout", true), 350);
});

for (const tls of [false, true]) {
  test(`${tls ? "HTTPS: " : ""}connections the broker answered and closed (clientError 400, CONNECT 405, Connection: close) or kept alive are cut when the client never closes its side`, async () => {
    // The handshake timeout is a minute: only the linger bound and keep-alive close these.
    const { b, http } = await broker(`linger-${tls}`, [
      "--handshake-timeout-ms",
      "60000",
      ...(tls ? TLS_FLAGS : []),
    ]);
    const base = openFds(b);
    const open = (n: number, bytes: string) => clients.open(http, n, bytes, tls ? TLS_CLIENT : undefined);
    const answered = [
      ...(await open(50, "NOT HTTP AT ALL\r\n\r\n")),
      ...(await open(50, `CONNECT example.com:443 HTTP/1.1\r\nhost: ${http}\r\n\r\n`)),
      ...(await open(50, `${REQUEST_LINE}host: ${http}\r\nconnection: close\r\n\r\n`)),
      ...(await open(50, `${REQUEST_LINE}host: ${http}\r\n\r\n`)),
    ];
    await until(
      () => "every connection got its answer",
      () => answered.every((s) => s.received.startsWith("HTTP/1.1 ")),
      10_000,
    );
    assert.deepEqual([...new Set(answered.map((s) => s.received.split("\r\n")[0]))].sort(), [
      "HTTP/1.1 200 OK",
      "HTTP/1.1 400 Bad Request",
      "HTTP/1.1 405 Method Not Allowed",
    ]);
    await untilReleased(b, base, 15_000);
    assert.ok(
      answered.every((s) => !s.socket.writableEnded),
      "the clients never ended their side",
    );
    // The clientError and CONNECT answers; node closes the others itself (Connection: close at
    // once, keep-alive after 5 s).
    await untilCounted(
      "connections cut for lingering",
      () => refused(http, "http", "linger", tls),
      100,
      5000,
    );
  });
}

test("--http-max-connections: one more is closed at once, so the process keeps descriptors for the gRPC port; each port's cap leaves the other port working; refusals are counted and logged once", async () => {
  const { b, http } = await broker("cap", [
    "--http-max-connections",
    "50",
    "--max-open-connections",
    "50",
    "--handshake-timeout-ms",
    "600000",
  ]);
  const base = openFds(b);
  // The process can hold 150 descriptors more than it has: an uncapped port would take them all.
  execFileSync("prlimit", ["--pid", String(b.child.pid), `--nofile=${base + 150}:${base + 150}`]);
  const held = await clients.open(http, 50, "");
  await untilHeld(b, base, 50);
  const over = await clients.open(http, 200, "");
  await until(
    () => `the connections over the cap were closed (${over.filter((s) => !s.ended).length} open)`,
    () => over.every((s) => s.ended),
    10_000,
  );
  assert.ok(openFds(b) <= base + 55, `the broker holds ${openFds(b)} fds, ${base} before, cap 50`);
  assert.ok(
    held.every((s) => !s.ended),
    "the connections under the cap are kept",
  );
  // The HTTP port is full; the gRPC port serves.
  const client = new TestClient(b.address, { "grpc.use_local_subchannel_pool": 1 });
  try {
    assert.equal(Number((await client.publish("t", ["a"])).firstSeq), 1);
  } finally {
    client.close();
  }
  // Now the gRPC port full too; health probes and scrapes get in once some HTTP connections go.
  await clients.open(b.address, 50 + 20, "");
  await untilHeld(b, base, 100);
  for (const s of held.slice(0, 10)) s.socket.destroy();
  await until(
    () => `the broker holds ${openFds(b)} fds after 10 HTTP connections closed (${base} before)`,
    () => openFds(b) <= base + 95,
    10_000,
  );
  assert.equal((await get(http, "/healthz")).status, 200);
  assert.equal(await refused(http, "http", "limit"), 200);
  // 20 over the cap, and maybe the publisher's connection if it had not closed yet.
  const grpcRefused = await refused(http, "grpc", "limit");
  assert.ok(grpcRefused >= 20 && grpcRefused <= 21, `${grpcRefused} gRPC connections refused`);
  const warnings = b
    .stderr()
    .split("\n")
    .filter((l) => l.includes('"level":"warn"') && l.includes("connections refused"));
  assert.equal(warnings.length, 2, `one warning per port while it goes on:\n${warnings.join("\n")}`);
});

test("a broker out of file descriptors stays up and serves again once connections go", async () => {
  // The gRPC port's cap (10,000 by default) is over the process's limit, as with a default
  // `ulimit -n` of 1024: accepting fails with EMFILE, and reading the RSS (/proc) did too, from
  // a timer, which ended the process.
  const { b, http } = await broker("emfile", ["--handshake-timeout-ms", "600000"]);
  const base = openFds(b);
  execFileSync("prlimit", ["--pid", String(b.child.pid), `--nofile=${base + 100}:${base + 100}`]);
  const silent = await clients.open(b.address, 150, "");
  await untilHeld(b, base, 95);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(b.child.exitCode, null, `the broker is running:\n${b.stderr().slice(-2000)}`);
  for (const s of silent) s.socket.destroy();
  await untilReleased(b, base, 10_000);
  assert.equal((await get(http, "/healthz")).status, 200);
});
