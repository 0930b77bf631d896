import type { OutcomeColumns, Pack } from "../wire/index.js";

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
 * typed arrays, trace ids read from the pack's stored metadata unless set here.
 */
export class Outcomes implements OutcomeColumns {
  readonly kind: Uint8Array;
  readonly seq: Float64Array;
  traceIds: (string | undefined)[] | undefined;

  constructor(
    readonly count: number,
    /** Where trace ids come from when not set (undefined: none). */
    readonly pack: Pack | undefined,
  ) {
    this.kind = new Uint8Array(count);
    this.seq = new Float64Array(count);
  }

  set(i: number, kind: number, seq: number, traceId?: string): void {
    this.kind[i] = kind;
    this.seq[i] = seq;
    if (traceId === undefined) return;
    this.traceIds ??= new Array<string | undefined>(this.count);
    this.traceIds[i] = traceId;
  }

  traceId(i: number): string {
    return this.traceIds?.[i] ?? this.pack?.traceId(i) ?? "";
  }

  /** Message `i`'s outcome as an object (tests, tools). */
  at(i: number): MessageOutcome {
    return { outcome: KINDS[this.kind[i]! - 1]!, seq: this.seq[i]!, traceId: this.traceId(i) };
  }

  /** The outcomes of messages from…to − 1, as outcomes of their own. */
  slice(from: number, to: number): Outcomes {
    const out = new Outcomes(to - from, undefined);
    for (let i = from; i < to; i++) out.copy(i - from, this, i);
    return out;
  }

  /** Takes message `j`'s outcome from `from` as message `i`'s. */
  copy(i: number, from: Outcomes, j: number): void {
    this.set(i, from.kind[j]!, from.seq[j]!, from.traceId(j));
  }
}
