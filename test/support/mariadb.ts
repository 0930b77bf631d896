import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import mysql from "mysql2/promise";

/**
 * A MySQL server for tests: the one named by NERVEBUS_TEST_MYSQL_URL (mysql://USER:PASS@HOST:PORT/
 * with rights to create databases), or else a throwaway MariaDB started here from Debian's
 * binaries, with a temp data dir and a free loopback port, removed on stop.
 */
export interface TestMysql {
  /** A fresh, empty database for one test, dropped first if it exists; returns its URL. */
  database(name: string): Promise<string>;
  /** Runs SQL as the test user (for assertions that look at the tables). */
  query<T = mysql.RowDataPacket[]>(url: string, sql: string, params?: unknown[]): Promise<T>;
  stop(): Promise<void>;
  /**
   * The same URL for a second user with the same rights, so a test can tell two brokers'
   * connections apart (and kill one's). Undefined for an external server.
   */
  readonly asSecondUser?: (url: string) => string;
  /**
   * Freezes the server (SIGSTOP) until `resume`: connections hang as in a network partition.
   * Undefined for an external server, which tests cannot freeze.
   */
  readonly pause?: () => void;
  readonly resume?: () => void;
}

function findBinary(names: string[]): string {
  for (const name of names) {
    for (const dir of ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]) {
      const p = join(dir, name);
      if (existsSync(p)) return p;
    }
  }
  throw new Error(`none of ${names.join(", ")} found: install mariadb-server (scripts/setup.sh does)`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function sanitize(name: string): string {
  return `nbt_${name.replace(/[^A-Za-z0-9_]/g, "_")}`.slice(0, 64);
}

function withDatabase(base: string, db: string): string {
  const u = new URL(base);
  u.pathname = `/${db}`;
  return u.toString();
}

async function connectRetry(options: mysql.ConnectionOptions, until: number): Promise<mysql.Connection> {
  for (;;) {
    try {
      return await mysql.createConnection(options);
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** The second test user of a server started here (see TestMysql.asSecondUser). */
const SECOND_USER = { user: "nervebus2", password: "nervebus-test2" };

function makeHarness(base: string, stopServer: () => Promise<void>, child?: ChildProcess): TestMysql {
  const admin = async () => {
    const u = new URL(base);
    return mysql.createConnection({
      host: u.hostname,
      port: Number(u.port || 3306),
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      multipleStatements: true,
    });
  };
  return {
    async database(name) {
      const db = sanitize(name);
      const conn = await admin();
      try {
        await conn.query(`DROP DATABASE IF EXISTS \`${db}\`; CREATE DATABASE \`${db}\``);
      } finally {
        await conn.end();
      }
      return withDatabase(base, db);
    },
    async query<T>(url: string, sql: string, params: unknown[] = []) {
      const conn = await mysql.createConnection({ uri: url });
      try {
        const [rows] = await conn.query(sql, params);
        return rows as T;
      } finally {
        await conn.end();
      }
    },
    stop: stopServer,
    ...(child
      ? {
          asSecondUser: (url: string) => {
            const u = new URL(url);
            u.username = SECOND_USER.user;
            u.password = SECOND_USER.password;
            return u.toString();
          },
          pause: () => {
            child.kill("SIGSTOP");
          },
          resume: () => {
            child.kill("SIGCONT");
          },
        }
      : {}),
  };
}

/** Starts (or connects to) the test MySQL server. */
export async function startTestMysql(): Promise<TestMysql> {
  const external = process.env.NERVEBUS_TEST_MYSQL_URL;
  if (external) return makeHarness(external, async () => {});

  const mariadbd = findBinary(["mariadbd", "mysqld"]);
  const installDb = findBinary(["mariadb-install-db", "mysql_install_db"]);
  const dir = mkdtempSync(join(tmpdir(), "nervebus-mariadb-"));
  const dataDir = join(dir, "data");
  const socket = join(dir, "mysqld.sock");
  const asRoot = process.getuid?.() === 0;
  const userArgs = asRoot ? ["--user=root"] : [];
  execFileSync(
    installDb,
    [
      "--no-defaults",
      `--datadir=${dataDir}`,
      "--auth-root-authentication-method=socket",
      "--skip-test-db",
      ...userArgs,
    ],
    { stdio: "ignore" },
  );
  const port = await freePort();
  const child: ChildProcess = spawn(
    mariadbd,
    [
      "--no-defaults",
      `--datadir=${dataDir}`,
      `--socket=${socket}`,
      `--port=${port}`,
      "--bind-address=127.0.0.1",
      `--pid-file=${join(dir, "mysqld.pid")}`,
      "--skip-log-bin",
      "--innodb-flush-log-at-trx-commit=1",
      "--innodb-buffer-pool-size=256M",
      "--innodb-log-file-size=256M",
      "--max-connections=500",
      "--max-allowed-packet=64M",
      ...userArgs,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) =>
      reject(new Error(`mariadbd exited with ${code} during start-up:\n${stderr}`)),
    ),
  );
  const user = "nervebus";
  const password = "nervebus-test";
  const root = await Promise.race([
    connectRetry({ socketPath: socket, user: "root" }, Date.now() + 30_000),
    exited,
  ]);
  await root.query(`CREATE USER IF NOT EXISTS '${user}'@'127.0.0.1' IDENTIFIED BY '${password}'`);
  // With GRANT OPTION: a test can make a user of narrower rights (one that read_only applies to).
  await root.query(`GRANT ALL PRIVILEGES ON *.* TO '${user}'@'127.0.0.1' WITH GRANT OPTION`);
  await root.query(
    `CREATE USER IF NOT EXISTS '${SECOND_USER.user}'@'127.0.0.1' IDENTIFIED BY '${SECOND_USER.password}'`,
  );
  await root.query(`GRANT ALL PRIVILEGES ON *.* TO '${SECOND_USER.user}'@'127.0.0.1'`);
  await root.end();
  child.removeAllListeners("exit");
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill("SIGCONT");
      const done = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await done;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return makeHarness(`mysql://${user}:${password}@127.0.0.1:${port}/`, stop, child);
}

/** Starts the test MySQL before this file's tests and stops it after; returns a getter. */
export function useTestMysql(): () => TestMysql {
  let server: TestMysql | undefined;
  before(async () => {
    server = await startTestMysql();
  });
  after(async () => {
    await server?.stop();
  });
  return () => {
    if (server === undefined) throw new Error("the test MySQL is not started yet");
    return server;
  };
}
