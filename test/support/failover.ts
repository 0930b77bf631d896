import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { connect, createServer, type Server, type Socket } from "node:net";
import { after, before } from "node:test";
import { startTestMysql, type TestMysql } from "./mariadb.js";

// What a MySQL failover needs in a test: a name that moves (a TCP proxy), the promoted
// server's copy of the data (test/integration/mysql-failover.test.ts,
// outbox-failover-mysql.test.ts), and what the broker reports meanwhile.

/** A TCP proxy standing in for a DNS name or VIP: `target` is where new connections go. */
export async function startProxy(target: number): Promise<{ port: number; target: number; server: Server }> {
  const sockets = new Set<Socket>();
  const proxy = {
    port: 0,
    target,
    server: createServer((client) => {
      const upstream = connect(proxy.target, "127.0.0.1");
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("error", () => undefined);
        s.on("close", () => {
          sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    }),
  };
  proxy.server.on("close", () => {
    for (const s of sockets) s.destroy();
  });
  await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
  proxy.port = (proxy.server.address() as { port: number }).port;
  return proxy;
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
