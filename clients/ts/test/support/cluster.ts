import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { TestBroker } from "./broker.js";

/** A throwaway MariaDB (or NERVEBUS_TEST_MYSQL_URL's server), from the repository root. */
const SCRIPT = fileURLToPath(new URL("../../../../../test/support/start-mariadb.sh", import.meta.url));

/**
 * Brokers sharing one database of a throwaway MariaDB (`--cluster`), with short leases so a
 * dead broker's topics move within about 2.5 s.
 */
export class TestCluster {
  private constructor(
    readonly brokers: TestBroker[],
    private readonly dir: string,
  ) {}

  /** Starts MariaDB and `count` brokers on one database named `name` (the broker creates it). */
  static async start(name: string, count: number): Promise<TestCluster> {
    const dir = mkdtempSync(join(tmpdir(), "nervebus-ts-cluster-"));
    const server = join(dir, "server");
    const brokers: TestBroker[] = [];
    try {
      const url = execFileSync("bash", [SCRIPT, server], { encoding: "utf8" }).trim() + name;
      const flags = ["--cluster", "--store", url, "--lease-ttl-ms", "2000", "--lease-renew-ms", "500"];
      for (let i = 0; i < count; i++) brokers.push(await TestBroker.start(flags));
    } catch (err) {
      await Promise.allSettled(brokers.map((b) => b.dispose()));
      TestCluster.#stopServer(dir);
      throw err;
    }
    return new TestCluster(brokers, dir);
  }

  /** Stops every broker and the MariaDB. */
  async dispose(): Promise<void> {
    await Promise.allSettled(this.brokers.map((b) => b.dispose()));
    TestCluster.#stopServer(this.dir);
  }

  static #stopServer(dir: string): void {
    execFileSync("bash", [SCRIPT, "--stop", join(dir, "server")]);
    rmSync(dir, { recursive: true, force: true });
  }
}
