import type { Percentiles } from "../lib/stats.js";

/** One configuration of the stream phase: SendPack packs, or Publish streams with their batch and credit. */
export interface StreamPhaseResult {
  readonly mode: "sendpack" | "stream";
  readonly publishers: number;
  /** Messages per pack (SendPack) or per batch (stream). */
  readonly batch: number;
  /** Stream only: the credit in messages each stream asked for. */
  readonly credit: number;
  readonly bytes: number;
  readonly messagesPerSec: number;
  /** SendPack: per pack; stream: from a batch's send to its confirm. */
  readonly confirmLatencyMs: Percentiles;
  readonly errors: Record<string, number>;
  /** Every batch got consecutive seqs, and each stream's batches rising seqs. */
  readonly seqsOk: boolean;
  readonly cpuMicrosPerMessage: Record<string, number>;
}
