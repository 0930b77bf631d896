import type { Check, FigureSummary } from "./check-types.js";
import type { CpuUse } from "./lib/cpu.js";
import type { Verification } from "./lib/verify-stored.js";
import type { ClusterRun } from "./phases/cluster-result.js";
import type { OutboxResult } from "./phases/outbox-result.js";
import type { PriorityPhaseResult } from "./phases/priority-result.js";
import type { StreamPhaseResult } from "./phases/stream-result.js";
import type { LongTask, ProfileSummary } from "./profile-summary.js";
import type { ClientCpuResult, CommitLatencyResult, RawResult } from "./raw.js";
import type { RawRunResult } from "./raw-runs.js";
import type { DrainResult, E2EResult, OverloadResult, PublishResult } from "./scenarios.js";
import type { StoreKind } from "./store-kind.js";

/**
 * The shape of results.json: what the suite writes and what bench/report.ts and
 * bench/render.ts read (BENCHMARKS.md quotes it too, so keys only ever get added).
 */

export type { StoreKind };

/** One publish configuration (also the no-store ceiling's). */
export type PublishEntry = PublishResult & {
  shards: number;
  /** Format 2: the mean messages per stored row of the topic afterwards (how the broker cut its runs). */
  messagesPerRun?: number;
};

/** One drain: a backlog of one payload size, published, then read and acked by a fresh broker. */
export type DrainEntry = DrainResult & {
  requestedBacklog: number;
  shards: number;
  bytes: number;
  preloadSeconds: number;
  preloadRate: number;
};

export interface StoreResults {
  store: StoreKind;
  /** Which run of the selection (1 … --repeat) these are. */
  repeat: number;
  raw: RawResult[];
  /** The run-row ceiling: format-2 rows straight through the driver. */
  rawRuns: RawRunResult[];
  /** The no-store ceiling: the publish load against a broker whose store keeps nothing. */
  noStore: PublishEntry[];
  rawLatency: CommitLatencyResult[];
  /** MySQL only: client CPU per row, text protocol vs prepared statements (what the broker uses). */
  rawClientCpu: ClientCpuResult[];
  publish: PublishEntry[];
  /** The 100 B drain (also in `drains`; kept for readers of older results). */
  drain: DrainEntry | undefined;
  /** The drain of each --drain-sizes payload. */
  drains: DrainEntry[];
  e2e: E2EResult[];
  overload:
    | (OverloadResult & {
        verify: Verification;
        /** Node options the overload broker ran with (the container's heap cap, by default). */
        nodeOptions: string;
        shutdown: number | "killed";
      })
    | undefined;
  profiles: { publish?: ProfileSummary; drain?: ProfileSummary; e2e?: ProfileSummary };
  /** The longest event-loop stalls of the broker in the profiled end-to-end run. */
  longTasks: LongTask[];
  /** The transactional outbox relay (`--only outbox`, MySQL only). */
  outbox?: OutboxResult;
  /** CPU used by the suite and by everything else, per phase. */
  cpu: Record<string, CpuUse>;
  errors: string[];
  /** `--only stream`: streaming publish against SendPack packs of 1000 (bench/phases/stream.ts). */
  stream?: StreamPhaseResult[];
  /** `--only priority`: urgent against normal latency under a bulk backlog (bench/phases/priority.ts). */
  priority?: PriorityPhaseResult[];
  /** `--only cluster`: publish and drain with several brokers on the store (bench/phases/cluster.ts). */
  cluster?: ClusterRun[];
}

export interface SuiteResults {
  startedAt: string;
  command: string;
  durationSec: number;
  /** The broker source measured: git HEAD of the checkout (or NERVEBUS_BENCH_SOURCE). */
  source: string;
  machine: {
    nproc: number;
    cpu: string;
    memoryGiB: number;
    node: string;
    mariadb: string;
    sqlite: string;
    /** Latency of a 4 KiB write + fdatasync in the temp directory the stores use. */
    fsync: { p50Ms: number; p99Ms: number; maxMs: number } | undefined;
    platform: string;
    /** The load generator's (this process's) V8 heap growth (lib/load-generator.ts). */
    loadGeneratorHeapGrowth?: string;
  };
  options: Record<string, string | boolean>;
  /** 1, 5 and 15 minute load averages when the suite started and ended. */
  loadavgStart: number[];
  loadavgEnd: number[];
  cpu: CpuUse | undefined;
  /** Runs of the whole selection (--repeat). */
  repeat: number;
  /** Each store's results, per run, in the order they ran. */
  stores: StoreResults[];
  /** Every figure over the runs: "store: what", mean, min, max, relative stdev, each run's value. */
  figures: Record<string, FigureSummary>;
  /** Every target of issue 14's "Done when": target, measured (mean over the runs), pass or fail. */
  checks: Check[];
}
