import { fileURLToPath } from "node:url";
import { TestBroker } from "./broker.js";

/** The broker's own MariaDB test helper, built with it by `npx tsc -p .` at the repository root. */
const MARIADB_SUPPORT =
  process.env.NERVEBUS_MARIADB_SUPPORT ??
  fileURLToPath(new URL("../../../../../dist/test/support/mariadb.js", import.meta.url));

interface TestMysql {
  database(name: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Brokers sharing one database of a throwaway MariaDB (`--cluster`), with short leases so a
 * dead broker's topics move within about 2.5 s. The MariaDB comes from the broker's own test
 * support (the server it starts, or NERVEBUS_TEST_MYSQL_URL).
 */
export class TestCluster {
  private constructor(
    readonly brokers: TestBroker[],
    private readonly mysql: TestMysql,
  ) {}

  /** Starts MariaDB and `count` brokers on one fresh database named `name`. */
  static async start(name: string, count: number): Promise<TestCluster> {
    const { startTestMysql } = (await import(MARIADB_SUPPORT)) as {
      startTestMysql: () => Promise<TestMysql>;
    };
    const mysql = await startTestMysql();
    const brokers: TestBroker[] = [];
    try {
      const url = await mysql.database(name);
      const flags = ["--cluster", "--store", url, "--lease-ttl-ms", "2000", "--lease-renew-ms", "500"];
      for (let i = 0; i < count; i++) brokers.push(await TestBroker.start(flags));
    } catch (err) {
      await Promise.allSettled(brokers.map((b) => b.dispose()));
      await mysql.stop();
      throw err;
    }
    return new TestCluster(brokers, mysql);
  }

  /** Stops every broker and the MariaDB. */
  async dispose(): Promise<void> {
    await Promise.allSettled(this.brokers.map((b) => b.dispose()));
    await this.mysql.stop();
  }
}
