import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { freePort } from "./mariadb.js";

/** Where Debian's galera-4 package puts the provider. */
export const GALERA_PROVIDER = ["/usr/lib/galera/libgalera_smm.so", "/usr/lib/libgalera_smm.so"].find((p) =>
  existsSync(p),
);

/** One node of a test Galera cluster. */
export interface GaleraNode {
  /** mysql://USER:PASS@127.0.0.1:PORT/ (add a database name). */
  readonly base: string;
  readonly port: number;
  /** Runs SQL as root on this node. */
  query(sql: string, params?: unknown[]): Promise<mysql.RowDataPacket[]>;
}

/** A MariaDB Galera cluster on loopback, in temp dirs, for one test file. */
export interface GaleraCluster {
  readonly nodes: readonly GaleraNode[];
  stop(): Promise<void>;
}

const USER = "nervebus";
const PASSWORD = "nervebus-test";

/**
 * Starts `size` MariaDB nodes with the Galera provider on loopback: free ports for MySQL, gcomm,
 * IST and SST each; the first bootstraps the cluster (--wsrep-new-cluster), the others join it
 * one at a time. Resolves once every node reports the whole cluster
 * as Synced. Throws (after stopping what started) when a node does not get there in `timeoutMs`.
 */
export async function startGaleraCluster(size: number, timeoutMs = 90_000): Promise<GaleraCluster> {
  if (GALERA_PROVIDER === undefined)
    throw new Error("galera-4 is not installed (libgalera_smm.so not found)");
  const dir = mkdtempSync(join(tmpdir(), "nervebus-galera-"));
  // The rsync daemon of a state transfer drops root for `nobody`: it must reach the data dirs.
  chmodSync(dir, 0o755);
  const ports = await Promise.all(
    Array.from({ length: size }, async () => ({
      mysql: await freePort(),
      gcomm: await freePort(),
      ist: await freePort(),
      sst: await freePort(),
    })),
  );
  const address = `gcomm://${ports.map((p) => `127.0.0.1:${p.gcomm}`).join(",")}`;
  const children: ChildProcess[] = [];
  const nodes: GaleraNode[] = [];
  const stop = async () => {
    for (const child of children.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const done = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await done;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + timeoutMs;
  const userArgs = process.getuid?.() === 0 ? ["--user=root"] : [];
  const dataDir = (i: number) => join(dir, `node${i}`);
  const socket = (i: number) => join(dir, `node${i}.sock`);
  const root = (i: number) => mysql.createConnection({ socketPath: socket(i), user: "root" });
  const spawnNode = async (i: number, bootstrap: boolean): Promise<ChildProcess> => {
    const p = ports[i]!;
    const child = spawn(
      "mariadbd",
      [
        "--no-defaults",
        `--datadir=${dataDir(i)}`,
        `--socket=${socket(i)}`,
        `--port=${p.mysql}`,
        "--bind-address=127.0.0.1",
        `--pid-file=${join(dir, `node${i}.pid`)}`,
        ...userArgs,
        "--binlog-format=ROW",
        "--innodb-autoinc-lock-mode=2",
        "--innodb-flush-log-at-trx-commit=1",
        "--innodb-buffer-pool-size=64M",
        "--max-connections=300",
        "--wsrep-on=ON",
        `--wsrep-provider=${GALERA_PROVIDER}`,
        `--wsrep-cluster-address=${address}`,
        "--wsrep-cluster-name=nervebus-test",
        `--wsrep-node-name=node${i}`,
        "--wsrep-node-address=127.0.0.1",
        `--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:${p.gcomm};ist.recv_addr=127.0.0.1:${p.ist};gcache.size=64M`,
        `--wsrep-sst-receive-address=127.0.0.1:${p.sst}`,
        "--wsrep-sst-method=rsync",
        ...(bootstrap ? ["--wsrep-new-cluster"] : []),
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      if (process.env.NERVEBUS_TEST_LOG) process.stderr.write(`[node${i}] ${d.toString()}`);
      stderr = (stderr + d.toString()).slice(-6000);
    });
    children.push(child);
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`galera node ${i} exited with ${child.exitCode}:\n${stderr}`);
      if (Date.now() > deadline)
        throw new Error(`galera node ${i} did not sync in ${timeoutMs} ms:\n${stderr}`);
      const state = await root(i)
        .then(async (c) => {
          try {
            const [rows] = await c.query<mysql.RowDataPacket[]>(
              "SELECT VARIABLE_VALUE AS v FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'wsrep_local_state_comment'",
            );
            return String(rows[0]?.v ?? "");
          } finally {
            await c.end();
          }
        })
        .catch(() => "");
      if (state === "Synced") return child;
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  try {
    // One node is made first, with the test user, and stopped cleanly; the others start from
    // copies of its data dir, so they join needing only the few transactions since (an
    // incremental transfer) rather than a whole copy.
    execFileSync(
      "mariadb-install-db",
      [
        "--no-defaults",
        `--datadir=${dataDir(0)}`,
        "--auth-root-authentication-method=socket",
        "--skip-test-db",
        ...userArgs,
      ],
      { stdio: "ignore" },
    );
    const first = await spawnNode(0, true);
    const c = await root(0);
    await c.query(`CREATE USER IF NOT EXISTS '${USER}'@'127.0.0.1' IDENTIFIED BY '${PASSWORD}'`);
    await c.query(`GRANT ALL PRIVILEGES ON *.* TO '${USER}'@'127.0.0.1'`);
    await c.end();
    const exited = new Promise((r) => first.once("exit", r));
    first.kill("SIGTERM");
    await exited;
    children.pop();
    for (let i = 1; i < size; i++) {
      cpSync(dataDir(0), dataDir(i), { recursive: true });
      chmodSync(dataDir(i), 0o777);
    }
    for (let i = 0; i < size; i++) {
      await spawnNode(i, i === 0);
      nodes.push({
        base: `mysql://${USER}:${PASSWORD}@127.0.0.1:${ports[i]!.mysql}/`,
        port: ports[i]!.mysql,
        async query(sql, params = []) {
          const conn = await root(i);
          try {
            const [rows] = await conn.query<mysql.RowDataPacket[]>(sql, params);
            return rows;
          } finally {
            await conn.end();
          }
        },
      });
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, stop };
}
