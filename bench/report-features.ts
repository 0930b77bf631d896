import { cpuCols, errorsText, section } from "./lib/markdown.js";
import { fmtInt, fmtMs } from "./lib/stats.js";
import type { StoreResults, SuiteResults } from "./suite-results.js";

/** "batch 100, credit 500" or "SendPack packs of 1000": how a stream-phase row is named everywhere. */
export function streamConfig(r: { mode: "sendpack" | "stream"; batch: number; credit: number }): string {
  return r.mode === "sendpack"
    ? `SendPack packs of ${r.batch}`
    : `stream batch ${r.batch} credit ${r.credit}`;
}

/**
 * The results.md sections of issue 16's phases, each present when some store ran it: streaming
 * publish against SendPack, the outbox relay, urgent latency under a bulk backlog, and the
 * cluster's publish and drain rates. `name` names a store's run in a row.
 */
export function featureSections(results: SuiteResults, name: (st: StoreResults) => string): string[] {
  const out: string[] = [];
  const ran = <K extends "stream" | "outbox" | "priority" | "cluster">(key: K) =>
    results.stores.filter((st) => st[key] !== undefined);
  if (ran("stream").length > 0) {
    out.push(
      ...section(
        "Streaming publish (issue 16)",
        "store | configuration | publishers: | msg/s: | / SendPack: | confirm p50 ms: | p99 ms: | max ms: | broker µs/msg: | db µs/msg: | loadgen µs/msg: | errors | seqs ok",
        "One broker, first --shards and --sizes: SendPack publishers with packs of 1000 (one pack in flight each), then as many Publish streams per configuration (batch = messages per batch, credit = messages a stream may have unconfirmed). Latency: SendPack call or batch send → durable confirm. The target: a configuration at least as fast as SendPack at a lower p99.",
      ),
    );
    for (const st of ran("stream")) {
      const base = st.stream!.find((r) => r.mode === "sendpack");
      for (const r of st.stream!) {
        const ratio = base && r !== base ? (r.messagesPerSec / base.messagesPerSec).toFixed(2) : "–";
        out.push(
          `| ${name(st)} | ${streamConfig(r)} | ${r.publishers} | ${fmtInt(r.messagesPerSec)} | ${ratio} | ${fmtMs(r.confirmLatencyMs.p50)} | ${fmtMs(r.confirmLatencyMs.p99)} | ${fmtMs(r.confirmLatencyMs.max)} | ${cpuCols(r.cpuMicrosPerMessage)} | ${errorsText(r.errors)} | ${r.seqsOk ? "yes" : "**NO**"} |`,
        );
      }
    }
  }
  if (ran("outbox").length > 0) {
    out.push(
      ...section(
        "Transactional outbox relay (issue 16)",
        "store | rows: | relay msg/s: | SendPack msg/s: | relay / SendPack: | rate msg/s: | COMMIT → delivery p50 ms: | p99 ms: | max ms: | COMMIT p99 ms: | SendPack e2e p99 ms:",
        "Throughput: rows committed in one transaction, then relayed into the topic (rows / last delivery − commit), against the same rows sent by SendPack in sequential packs of 10,000 to the same broker. Latency: single-row transactions at a steady rate, COMMIT returned → delivered to a subscriber, next to the broker's own SendPack → delivery latency at the same rate. Targets: relay p99 ≤ 50 ms and ≥ 50,000 msg/s.",
      ),
    );
    for (const st of ran("outbox")) {
      const { throughput: t, latency: l } = st.outbox!;
      out.push(
        `| ${name(st)} | ${fmtInt(t.rows)} | ${fmtInt(t.msgPerSec)} | ${fmtInt(t.baselineMsgPerSec)} | ${(t.msgPerSec / t.baselineMsgPerSec).toFixed(2)} | ${fmtInt(l.rate)} | ${fmtMs(l.ms.p50)} | ${fmtMs(l.ms.p99)} | ${fmtMs(l.ms.max)} | ${fmtMs(l.commitMs.p99)} | ${fmtMs(l.sendPackMs.p99)} |`,
      );
    }
  }
  if (ran("priority").length > 0) {
    out.push(
      ...section(
        "Priorities: urgent latency under a bulk backlog (issue 16)",
        "store | stamped messages | backlog: | sent: | delivered in the run: | p50 ms: | p99 ms: | max ms: | backlog delivered msg/s:",
        "A backlog drained by one consumer acking at a fixed rate (slower than the broker delivers) while stamped messages arrive at a steady rate: urgent ones over a bulk backlog, then the baseline without priorities (all normal: the stamped messages wait behind the backlog). Latency: send → delivery of the stamped messages delivered within the run.",
      ),
    );
    for (const st of ran("priority")) {
      for (const r of st.priority!) {
        out.push(
          `| ${name(st)} | ${r.priority === "urgent" ? "urgent, bulk backlog" : "normal, normal backlog (baseline)"} | ${fmtInt(r.backlog)} | ${fmtInt(r.sent)} | ${fmtInt(r.delivered)} | ${fmtMs(r.latencyMs.p50)} | ${fmtMs(r.latencyMs.p99)} | ${fmtMs(r.latencyMs.max)} | ${fmtInt(r.bulkDeliveredPerSec)} |`,
        );
      }
    }
  }
  if (ran("cluster").length > 0) {
    out.push(
      ...section(
        "Cluster: brokers sharing the store",
        "store | brokers: | route | topics: | publish msg/s: | drain msg/s: | messages: | undrained:",
        "Brokers with --cluster on one store, one publisher and consumer per topic: forwarded sends each topic's calls to a broker that does not own it, direct to its owner.",
      ),
    );
    for (const st of ran("cluster")) {
      for (const r of st.cluster!) {
        out.push(
          `| ${name(st)} | ${r.brokers} | ${r.route} | ${r.topics} | ${fmtInt(r.publishPerSec)} | ${fmtInt(r.drainPerSec)} | ${fmtInt(r.messages)} | ${fmtInt(r.undrained)} |`,
        );
      }
    }
  }
  return out;
}
