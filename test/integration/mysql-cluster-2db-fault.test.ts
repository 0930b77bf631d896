import { test } from "node:test";
import { runClusterFaultTest } from "../support/cluster-fault.js";
import { startTestMysql, useTestMysql } from "../support/mariadb.js";

const testMysql = useTestMysql();

const TTL_MS = 2000;
/** Faults injected: each a SIGKILL (and restart) or a SIGSTOP longer than the lease. */
const FAULTS = Number(process.env.NERVEBUS_CLUSTER_FAULTS ?? 20);

test(`mysql --cluster fault test over 2 MariaDB servers: 3 brokers, topics on both and moved between them, publishers and consumers running, a broker killed or frozen ${FAULTS} times; every confirmed message at its seq, delivered, and never again once its ack was confirmed`, async () => {
  const first = testMysql();
  const second = await startTestMysql();
  try {
    await runClusterFaultTest({
      databases: [
        { server: first, url: await first.database("cluster_2db_fault_a") },
        { server: second, url: await second.database("cluster_2db_fault_b") },
      ],
      brokerArgs: [
        "--cluster",
        "--lease-ttl-ms",
        String(TTL_MS),
        "--lease-renew-ms",
        "500",
        "--log-level",
        "info",
      ],
      ttlMs: TTL_MS,
      faults: FAULTS,
      topics: ["g0", "g1", "g2", "g3", "g4", "g5"],
      seed: 20261207,
      moves: true,
    });
  } finally {
    await second.stop();
  }
});
