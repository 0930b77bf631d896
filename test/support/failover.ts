import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { after, before } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type { SendPackResponse } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import type { TestClient } from "./broker.js";
import { startTestMysql, type TestMysql } from "./mariadb.js";

// What a MySQL failover needs in a test: a name that moves (a TCP proxy), the promoted
// server's copy of the data (test/integration/mysql-failover.test.ts,
// outbox-failover-mysql.test.ts), and what the broker reports meanwhile.

/** A TCP proxy standing in for a DNS name or VIP (see startProxy). */
export interface Proxy {
  readonly port: number;
  /** Where new connections go. */
  target: number;
  /**
   * The host behind the name died, or the network drops its packets: open connections forward
   * nothing any more and stay open (no reset, no close), and new ones are taken and left
   * waiting, until `thaw(target)` moves the name.
   */
  freeze(): void;
  /** New connections go to `target` again (open frozen ones stay frozen). */
  thaw(target: number): void;
  /** Closes every connection through the proxy at once (frozen ones too). */
  cutAll(): void;
  readonly server: Server;
}

/** A TCP proxy standing in for a DNS name or VIP: `target` is where new connections go. */
export async function startProxy(target: number): Promise<Proxy> {
  const sockets = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let frozen = false;
  const keep = (s: Socket) => {
    sockets.add(s);
    s.on("error", () => undefined);
    s.on("close", () => sockets.delete(s));
  };
  const server = createServer((client) => {
    keep(client);
    if (frozen) {
      client.pause();
      return;
    }
    const upstream = connect(proxy.target, "127.0.0.1");
    keep(upstream);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    for (const s of pair)
      s.on("close", () => {
        pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const proxy: Proxy = {
    port: 0,
    target,
    freeze() {
      frozen = true;
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    thaw(to: number) {
      proxy.target = to;
      frozen = false;
    },
    cutAll() {
      for (const s of sockets) s.destroy();
    },
    server,
  };
  server.on("close", () => proxy.cutAll());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  (proxy as { port: number }).port = (server.address() as { port: number }).port;
  return proxy;
}

/** A broker user with every right on `db` only: read_only applies to it (no READ ONLY ADMIN). */
export async function createBrokerUser(
  server: TestMysql,
  adminUrl: string,
  db: string,
  user: string,
): Promise<void> {
  await server.query(adminUrl, `CREATE USER IF NOT EXISTS '${user}'@'127.0.0.1' IDENTIFIED BY 'pw'`);
  await server.query(adminUrl, `GRANT ALL PRIVILEGES ON \`${db}\`.* TO '${user}'@'127.0.0.1'`);
}

/** Publishes one message with a message id, again on UNAVAILABLE (the id dedups a retry). */
export async function publishUntilConfirmed(
  client: TestClient,
  topic: string,
  id: string,
  giveUpAt: number,
): Promise<SendPackResponse> {
  const errors: string[] = [];
  for (;;) {
    try {
      return await client.publish(topic, [{ data: Buffer.from(id), messageId: id }], 10_000);
    } catch (err) {
      const e = err as grpc.ServiceError;
      errors.push(`${grpc.status[e.code]}: ${e.details}`);
      if (e.code !== grpc.status.UNAVAILABLE || Date.now() > giveUpAt)
        throw new Error(`publish of ${id} never confirmed; errors:\n${errors.slice(-3).join("\n")}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** The port of a mysql:// URL. */
export function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** Copies database `db` from one server to another as a consistent snapshot. */
export function copyDatabase(from: string, to: string, db: string): void {
  const args = (url: string) => {
    const u = new URL(url);
    return `--no-defaults -h 127.0.0.1 -P ${u.port} -u ${u.username}`;
  };
  execFileSync(
    "bash",
    [
      "-c",
      `set -o pipefail; mariadb-dump ${args(from)} --single-transaction ${db} | mariadb ${args(to)} ${db}`,
    ],
    { env: { ...process.env, MYSQL_PWD: decodeURIComponent(new URL(from).password) }, stdio: "pipe" },
  );
}

/**
 * Starts two test MySQL servers (the old primary and the one promoted) before this file's tests
 * and stops them after; the getter gives undefined when NERVEBUS_TEST_MYSQL_URL names one
 * external server instead (a test then skips).
 */
export function useTwoMysql(): () => { a: TestMysql; b: TestMysql } | undefined {
  let a: TestMysql | undefined;
  let b: TestMysql | undefined;
  before(async () => {
    a = await startTestMysql();
    b = await startTestMysql();
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });
  return () => (a?.asSecondUser && b?.asSecondUser ? { a, b } : undefined);
}

/**
 * `nervebus_store_read_only` for `server` and `role` ("store" or "outbox") in a scrape of the
 * broker, or undefined when there is no such series.
 */
export async function readOnlyGauge(
  httpAddress: string,
  server: string,
  role: string,
): Promise<number | undefined> {
  const body = await (await fetch(`http://${httpAddress}/metrics`)).text();
  const line = body
    .split("\n")
    .find(
      (l) =>
        l.startsWith("nervebus_store_read_only{") &&
        l.includes(`server="${server}"`) &&
        l.includes(`role="${role}"`),
    );
  return line === undefined ? undefined : Number(line.split(" ").pop());
}

/** Polls `probe` until it returns `want`; fails with the last value after 30 s. */
export async function pollUntil<T>(what: string, want: T, probe: () => Promise<T>): Promise<void> {
  const deadline = Date.now() + 30_000;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await probe();
    if (last === want) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}: wanted ${String(want)}, last ${String(last)}`);
}

/**
 * The local ports of this host's connections to `port` that their client still holds open
 * (ESTABLISHED in /proc/net/tcp). A socket its owner closed leaves that state at once, whether
 * the other end answers or not, so a frozen proxy still shows which connections the broker let go.
 */
export function openClientPorts(port: number): Set<number> {
  const ports = new Set<number>();
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const [, local, remote, state] = line.trim().split(/\s+/);
    if (state !== "01" || remote === undefined || local === undefined) continue;
    if (Number.parseInt(remote.split(":")[1]!, 16) === port)
      ports.add(Number.parseInt(local.split(":")[1]!, 16));
  }
  return ports;
}
