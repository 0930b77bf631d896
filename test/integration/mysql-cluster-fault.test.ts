import { test } from "node:test";
import { runClusterFaultTest } from "../support/cluster-fault.js";
import { useTestMysql } from "../support/mariadb.js";

const testMysql = useTestMysql();

const TTL_MS = 2000;
/** Faults injected: each a SIGKILL (and restart) or a SIGSTOP longer than the lease. */
const FAULTS = Number(process.env.NERVEBUS_CLUSTER_FAULTS ?? 20);

test(`mysql --cluster fault test: 3 brokers, publishers and consumers running, a broker killed or frozen ${FAULTS} times; every confirmed message at its seq, delivered, and never again once its ack was confirmed`, async () => {
  const server = testMysql();
  await runClusterFaultTest({
    databases: [{ server, url: await server.database("cluster_fault") }],
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
    topics: ["f0", "f1", "f2", "f3", "f4", "f5"],
    seed: 20261206,
  });
});
