// Connections to the gRPC port that hold a file descriptor without ever becoming a client: raw
// TCP that sends nothing (or part of the HTTP/2 preface), TLS that never finishes its handshake
// or never sends the preface after it, and clients that get a graceful close (GOAWAY, FIN) and
// never close their side. Each costs the broker a descriptor; with nothing to end them, any
// unauthenticated client could use up the process's limit and stop the broker accepting anyone.
// The broker is its own process: its descriptors are counted in /proc.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { TestClient } from "../support/broker.js";
import { pem, TestCa } from "../support/pki.js";
import { type BrokerProcess, spawnBroker } from "../support/process.js";

/** The client's HTTP/2 connection preface (RFC 9113 §3.4) and an empty SETTINGS frame. */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

const dir = mkdtempSync(join(tmpdir(), "nb-silent-"));
const ca = TestCa.create(dir);
const serverCert = ca.server("broker");
const brokers: BrokerProcess[] = [];
const sockets: Socket[] = [];

after(async () => {
  for (const s of sockets) s.destroy();
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

function openFds(b: BrokerProcess): number {
  return readdirSync(`/proc/${b.child.pid}/fd`).length;
}

/** Polls `ok` every 100 ms; fails naming `what` and the last state after `ms`. */
async function until(what: () => string, ok: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(what());
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Silent {
  readonly socket: Socket;
  /** The broker ended its side (FIN) or cut the connection. */
  ended: boolean;
}

/**
 * `n` connections that send `bytes` (nothing when empty), over TLS when `tls` (after the
 * handshake), then nothing more; they never end their side, even once the broker ended its own.
 */
async function openSilent(address: string, n: number, bytes: Buffer, tls = false): Promise<Silent[]> {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.split(":").pop())];
  return Promise.all(
    Array.from({ length: n }, async () => {
      const tcp = connect({ host, port, allowHalfOpen: true });
      const socket = tls ? tlsConnect({ socket: tcp, ca: pem(ca.cert), ALPNProtocols: ["h2"] }) : tcp;
      sockets.push(tcp);
      const silent: Silent = { socket, ended: false };
      for (const s of [tcp, socket]) s.on("error", () => {});
      socket.on("end", () => {
        silent.ended = true;
      });
      socket.on("close", () => {
        silent.ended = true;
      });
      // What the broker sends (its SETTINGS, a GOAWAY) is read and dropped.
      socket.resume();
      await new Promise((resolve) => socket.once(tls ? "secureConnect" : "connect", resolve));
      if (bytes.length > 0) socket.write(bytes);
      return silent;
    }),
  );
}

/** Waits until the broker holds `n` more descriptors than `base` (it accepted the connections). */
async function untilHeld(b: BrokerProcess, base: number, n: number): Promise<void> {
  await until(
    () => `the broker holds ${openFds(b)} fds, ${base} before ${n} connections`,
    () => openFds(b) >= base + n,
    10_000,
  );
}

/** Waits until the broker is back to about `base` descriptors. */
async function untilReleased(b: BrokerProcess, base: number, ms: number): Promise<void> {
  await until(
    () => `the broker still holds ${openFds(b)} fds after ${ms} ms (${base} before the connections)`,
    () => openFds(b) <= base + 3,
    ms,
  );
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
    assert.ok(
      silent.every((s) => s.ended),
      "every connection was ended by the broker",
    );
    assert.equal(
      client.publisher.getChannel().getConnectivityState(false),
      grpc.connectivityState.READY,
      "the client's connection, older than the handshake timeout, is still open",
    );
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
  assert.ok(
    silent.every((s) => s.ended),
    "every connection was ended by the broker",
  );
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
