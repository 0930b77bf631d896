// Connections to the gRPC port that hold a file descriptor without ever becoming a client: raw
// TCP that sends nothing (or part of the HTTP/2 preface), TLS that never finishes its handshake
// or never sends the preface after it, and clients that get a graceful close (GOAWAY, FIN) and
// never close their side. Each costs the broker a descriptor; with nothing to end them, any
// unauthenticated client could use up the process's limit and stop the broker accepting anyone.
// The broker is its own process: its descriptors are counted in /proc.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
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

/** The client's HTTP/2 connection preface (RFC 9113 §3.4) and an empty SETTINGS frame. */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

const dir = mkdtempSync(join(tmpdir(), "nb-silent-"));
const ca = TestCa.create(dir);
const serverCert = ca.server("broker");
const brokers: BrokerProcess[] = [];
const clients = new SilentClients();
/** TLS as a gRPC client speaks it. */
const H2_TLS = { ca: pem(ca.cert), ALPNProtocols: ["h2"] };

after(async () => {
  clients.destroyAll();
  for (const b of brokers) {
    b.child.kill("SIGKILL");
    await b.exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

async function broker(name: string, args: string[]): Promise<BrokerProcess> {
  const b = await spawnBroker(["--store", `sqlite:${join(dir, `${name}.db`)}`, ...args]);
  brokers.push(b);
  return b;
}

/** `n` connections that send `bytes` (over TLS with `tls`), then nothing; see SilentClients. */
function openSilent(address: string, n: number, bytes: Buffer, tls = false) {
  return clients.open(address, n, bytes, tls ? H2_TLS : undefined);
}

test("raw TCP connections that send nothing, or part of the HTTP/2 preface, are closed after --handshake-timeout-ms; a client's connection is kept", async () => {
  const b = await broker("raw", ["--handshake-timeout-ms", "1000"]);
  // Its own connection, so that its state is its connection's.
  const client = new TestClient(b.address, { "grpc.use_local_subchannel_pool": 1 });
  try {
    await client.publish("t", ["a"]);
    const base = openFds(b);
    const silent = [
      ...(await openSilent(b.address, 300, Buffer.alloc(0))),
      ...(await openSilent(b.address, 100, PREFACE.subarray(0, 10))),
    ];
    await untilHeld(b, base, 400);
    await untilReleased(b, base, 15_000);
    await untilEnded(silent, 5000);
    assert.equal(
      client.publisher.getChannel().getConnectivityState(false),
      grpc.connectivityState.READY,
      "the client's connection, older than the handshake timeout, is still open",
    );
    const metrics = await (await fetch(`http://${await httpAddressOf(b)}/metrics`)).text();
    assert.equal(refusedIn(metrics, "grpc", "handshake_timeout"), 400);
  } finally {
    client.close();
  }
});

for (const tls of [false, true]) {
  test(`${tls ? "TLS: " : ""}a connection that sent the preface, was closed gracefully (GOAWAY, FIN) after --max-connection-idle-ms and never closes its side is cut`, async () => {
    const b = await broker(`goaway-${tls}`, [
      "--max-connection-idle-ms",
      "1000",
      ...(tls ? ["--tls-cert", serverCert.cert, "--tls-key", serverCert.key] : []),
    ]);
    const base = openFds(b);
    const silent = await openSilent(b.address, 300, Buffer.concat([PREFACE, SETTINGS]), tls);
    await untilHeld(b, base, 300);
    // Graceful first: each gets the broker's FIN while the client keeps its own side open.
    await until(
      () => "every connection got the broker's FIN",
      () => silent.every((s) => s.ended),
      15_000,
    );
    assert.ok(
      silent.every((s) => !s.socket.writableEnded),
      "the clients never ended their side",
    );
    await untilReleased(b, base, 15_000);
    if (!tls) {
      const http = await httpAddressOf(b);
      await untilCounted(
        "connections cut for lingering",
        async () => refusedIn(await (await fetch(`http://${http}/metrics`)).text(), "grpc", "linger"),
        300,
        5000,
      );
    }
  });
}

test("TLS: connections that never start the handshake, or finish it and never send the preface, are closed after --handshake-timeout-ms", async () => {
  const b = await broker("tls", [
    "--tls-cert",
    serverCert.cert,
    "--tls-key",
    serverCert.key,
    "--handshake-timeout-ms",
    "1000",
  ]);
  const base = openFds(b);
  const silent = [
    ...(await openSilent(b.address, 200, Buffer.alloc(0))),
    ...(await openSilent(b.address, 100, Buffer.alloc(0), true)),
  ];
  await untilHeld(b, base, 300);
  await untilReleased(b, base, 15_000);
  await untilEnded(silent, 5000);
  // A real client still gets through, and its connection outlives the handshake timeout.
  const client = new TestClient(
    b.address,
    { "grpc.use_local_subchannel_pool": 1 },
    grpc.credentials.createSsl(pem(ca.cert)),
  );
  try {
    assert.equal(Number((await client.publish("t", ["a"])).firstSeq), 1);
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(
      client.publisher.getChannel().getConnectivityState(false),
      grpc.connectivityState.READY,
      "the TLS client's connection is kept",
    );
  } finally {
    client.close();
  }
});

test("--max-open-connections: a connection over it is closed at once; a client gets in when some go", async () => {
  const b = await broker("cap", ["--max-open-connections", "50", "--handshake-timeout-ms", "600000"]);
  const base = openFds(b);
  const held = await openSilent(b.address, 50, Buffer.alloc(0));
  await untilHeld(b, base, 50);
  // The handshake timeout is 10 minutes: only the cap closes these.
  const over = await openSilent(b.address, 50, Buffer.alloc(0));
  await until(
    () => "the connections over the cap were closed",
    () => over.every((s) => s.ended),
    10_000,
  );
  // A few descriptors of the broker's own (its store's files) may have come meanwhile; the 50
  // connections over the cap would be 50 more.
  assert.ok(openFds(b) <= base + 55, `the broker holds ${openFds(b)} fds, ${base} before, cap 50`);
  assert.ok(
    held.every((s) => !s.ended),
    "the connections under the cap are kept",
  );
  for (const s of held.slice(0, 10)) s.socket.destroy();
  await until(
    () => `the broker holds ${openFds(b)} fds after 10 connections closed (${base} before)`,
    () => openFds(b) <= base + 45,
    10_000,
  );
  const client = new TestClient(b.address);
  try {
    assert.equal(Number((await client.publish("t", ["a"])).firstSeq), 1);
  } finally {
    client.close();
  }
});
