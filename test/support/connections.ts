// Connections that hold one of a broker process's file descriptors without being a client, and
// the broker's descriptors counted in /proc: what the silent-connection tests of both ports use.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";
import type { BrokerProcess } from "./process.js";

/** The broker's open file descriptors; fails with the end of its log if it is gone. */
export function openFds(b: BrokerProcess): number {
  if (b.child.exitCode !== null || b.child.signalCode !== null)
    assert.fail(`the broker exited (${b.child.exitCode ?? b.child.signalCode}):\n${b.stderr().slice(-1500)}`);
  return readdirSync(`/proc/${b.child.pid}/fd`).length;
}

/** Polls `ok` every 100 ms; fails naming `what` and the last state after `ms`. */
export async function until(what: () => string, ok: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(what());
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface Silent {
  readonly socket: Socket;
  /** The broker ended its side (FIN) or cut the connection. */
  ended: boolean;
  /** What the broker sent. */
  received: string;
}

/** Opens silent connections and destroys them all at the end (`destroyAll` in `after`). */
export class SilentClients {
  readonly #sockets: Socket[] = [];

  /**
   * `n` connections to HOST:PORT that send `bytes` (nothing when empty), over TLS with `tls`
   * (after the handshake), then nothing more; they never end their side, even once the broker
   * ended its own. What the broker sends is kept in `received`.
   */
  async open(address: string, n: number, bytes: Buffer | string, tls?: ConnectionOptions): Promise<Silent[]> {
    const host = address.slice(0, address.lastIndexOf(":"));
    const port = Number(address.slice(address.lastIndexOf(":") + 1));
    return Promise.all(
      Array.from({ length: n }, async () => {
        const tcp = connect({ host, port, allowHalfOpen: true });
        const socket = tls === undefined ? tcp : tlsConnect({ ...tls, socket: tcp });
        this.#sockets.push(tcp);
        const silent: Silent = { socket, ended: false, received: "" };
        for (const s of [tcp, socket]) s.on("error", () => {});
        socket.on("end", () => {
          silent.ended = true;
        });
        socket.on("close", () => {
          silent.ended = true;
        });
        socket.on("data", (d: Buffer) => {
          silent.received += d.toString("latin1");
        });
        await new Promise((resolve) => {
          socket.once(tls === undefined ? "connect" : "secureConnect", resolve);
          // Refused by the broker before the handshake: it counts as open and ended.
          socket.once("close", resolve);
        });
        if (bytes.length > 0 && !silent.ended) socket.write(bytes);
        return silent;
      }),
    );
  }

  destroyAll(): void {
    for (const s of this.#sockets) s.destroy();
  }
}

/**
 * Waits until the broker ended each of `silent`: right after its descriptors are released (give
 * or take the few untilReleased allows), the last ones' ends may still be on their way.
 */
export async function untilEnded(silent: readonly Silent[], ms: number): Promise<void> {
  await until(
    () =>
      `${silent.filter((s) => !s.ended).length} of ${silent.length} connections not ended by the broker after ${ms} ms`,
    () => silent.every((s) => s.ended),
    ms,
  );
}

/** Waits until the broker holds `n` more descriptors than `base` (it accepted the connections). */
export async function untilHeld(b: BrokerProcess, base: number, n: number): Promise<void> {
  await until(
    () => `the broker holds ${openFds(b)} fds, ${base} before ${n} connections`,
    () => openFds(b) >= base + n,
    10_000,
  );
}

/** Waits until the broker is back to about `base` descriptors. */
export async function untilReleased(b: BrokerProcess, base: number, ms: number): Promise<void> {
  await until(
    () => `the broker still holds ${openFds(b)} fds after ${ms} ms (${base} before the connections)`,
    () => openFds(b) <= base + 3,
    ms,
  );
}

/**
 * Polls `count` every 100 ms until it reaches `n`, then asserts it is exactly `n`. After
 * untilReleased a few descriptors may still be open (it allows 3), so the last of a batch of
 * cuts may not be counted yet when it returns.
 */
export async function untilCounted(
  what: string,
  count: () => Promise<number>,
  n: number,
  ms: number,
): Promise<void> {
  const deadline = Date.now() + ms;
  let last = await count();
  while (last < n && Date.now() <= deadline) {
    await new Promise((r) => setTimeout(r, 100));
    last = await count();
  }
  assert.equal(last, n, `${what}: ${last} after ${ms} ms, expected ${n}`);
}

/** How many connections of `port` the broker refused or cut for `reason`, in a /metrics body. */
export function refusedIn(metrics: string, port: "grpc" | "http", reason: string): number {
  const series = `nervebus_connections_refused_total{port="${port}",reason="${reason}"`;
  const line = metrics.split("\n").find((l) => l.startsWith(series));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}
