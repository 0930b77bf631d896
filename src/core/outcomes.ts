import { ByteView, copyViews, type OutcomeColumns, type Pack } from "../wire/index.js";

/** What happened to one message of a pack. */
export interface MessageOutcome {
  readonly outcome: "appended" | "duplicate" | "scheduled";
  /** 0 for scheduled (and for duplicates of a message that is still scheduled). */
  readonly seq: number;
  readonly traceId: string;
}

const KINDS = ["appended", "duplicate", "scheduled"] as const;
/** MessageResult.Outcome numbers (proto): appended 1, duplicate 2, scheduled 3. */
export const APPENDED = 1;
export const DUPLICATE = 2;
export const SCHEDULED = 3;

/**
 * The outcome of each message of a pack, column-wise (no object per message): kind and seq in
 * typed arrays, trace ids copied from the pack's stored metadata (32 bytes each) unless set
 * here. It keeps nothing of the pack, whose request bytes can go while the append waits for
 * its confirm.
 */
export class Outcomes implements OutcomeColumns {
  readonly kind: Uint8Array;
  readonly seq: Float64Array;
  readonly traces: Buffer | undefined;
  readonly traced: Uint8Array | undefined;
  traceIds: (string | undefined)[] | undefined;

  /**
   * Outcomes of `count` messages; trace ids of `pack`'s messages, when given. Its columns share
   * one buffer (one native allocation per pack).
   */
  constructor(
    readonly count: number,
    pack: Pack | undefined,
  ) {
    const all = new ArrayBuffer(count * (pack === undefined ? 9 : 10 + 32));
    this.seq = new Float64Array(all, 0, count);
    this.kind = new Uint8Array(all, 8 * count, count);
    if (pack === undefined) return;
    this.traced = new Uint8Array(all, 9 * count, count);
    this.traced.set(pack.traced);
    const traces = Buffer.from(all, 10 * count, 32 * count);
    const from = new ByteView(pack.meta);
    const to = new ByteView(traces);
    for (let i = 0; i < count; i++) {
      if (pack.traced[i] === 0) continue;
      const end = pack.metaEnd[i]!;
      copyViews(from, end - 32, end, to, 32 * i);
    }
    this.traces = traces;
  }

  set(i: number, kind: number, seq: number, traceId?: string): void {
    this.kind[i] = kind;
    this.seq[i] = seq;
    if (traceId === undefined) return;
    this.traceIds ??= new Array<string | undefined>(this.count);
    this.traceIds[i] = traceId;
  }

  traceId(i: number): string {
    const set = this.traceIds?.[i];
    if (set !== undefined) return set;
    return this.traced?.[i] === 1 ? this.traces!.toString("latin1", 32 * i, 32 * i + 32) : "";
  }

  /** Message `i`'s outcome as an object (tests, tools). */
  at(i: number): MessageOutcome {
    return { outcome: KINDS[this.kind[i]! - 1]!, seq: this.seq[i]!, traceId: this.traceId(i) };
  }

  /**
   * The outcomes of messages from…to − 1, as columns of their own that share this one's
   * memory (a Publish stream's per-batch confirm): copying them message by message cost a
   * trace-id string per message, which SendPack's confirm never makes.
   */
  slice(from: number, to: number): OutcomeColumns {
    return {
      count: to - from,
      kind: this.kind.subarray(from, to),
      seq: this.seq.subarray(from, to),
      traces: this.traces?.subarray(32 * from, 32 * to),
      traced: this.traced?.subarray(from, to),
      traceIds: this.traceIds?.slice(from, to),
    };
  }

  /** Takes message `j`'s outcome from `from` as message `i`'s. */
  copy(i: number, from: Outcomes, j: number): void {
    this.set(i, from.kind[j]!, from.seq[j]!, from.traceId(j));
  }
}
