import type { ReadOnlyState } from "./store.js";

/**
 * What the outbox relay needs from an application's database holding an outbox table (see
 * docs/design-round-2.md, "Transactional outbox"). Implementations own their connections and
 * throw NerveBusError ("unavailable" for what is worth retrying).
 */
export interface OutboxSource {
  /** Where the outbox lives, without credentials (for logs and errors). */
  readonly name: string;

  /**
   * Creates the outbox tables when missing, takes the source's relay lock (one relay per
   * outbox: resolves only once it holds it, retrying while another holds it and `wanted()`
   * says so, else throws "unavailable") and reads the relay state.
   */
  open(wanted: () => boolean): Promise<RelayState>;

  /**
   * Whether this relay surely still holds the outbox (lock or lease) now: the relay asks before
   * every publish, so a relay that lost it (a frozen broker whose lease lapsed) stops publishing.
   */
  held(): boolean;

  /** Visible rows with id > `cursor`, in id order, at most `limit`. */
  fetch(cursor: number, limit: number): Promise<OutboxRow[]>;

  /**
   * Visible rows with ids in `ranges` (inclusive [first, last] pairs, all at or below the
   * relay's cursor), in id order, at most `limit`: rows of a gap the relay passed that
   * committed later, and rows relayed whose delete has not committed yet (the relay leaves
   * those out).
   */
  fetchLate(ranges: readonly (readonly [number, number])[], limit: number): Promise<OutboxRow[]>;

  /**
   * Records a topic before the relay's first publish to it: `scanFrom` is a seq no later
   * publish of this relay to the topic can be below. Keeps an existing record.
   */
  addTopic(topic: string, scanFrom: number): Promise<void>;

  /**
   * In one transaction of the outbox database: deletes the rows `ids` (published), raises each
   * topic's scan-from seq, and stores the cursor and, when given, the relay's recent passed gaps
   * (replacing those stored; the next relay's `open` returns them). Throws "unavailable" (and
   * changes nothing) when the relay lock was lost.
   */
  complete(
    ids: readonly number[],
    scanFrom: ReadonlyMap<string, number>,
    cursor: number,
    gaps?: readonly PassedGap[],
  ): Promise<void>;

  /**
   * Whether the outbox's server refuses the relay's writes as read-only (a failover of the
   * application's database); undefined while the source has no connections.
   */
  readOnlyState?(): ReadOnlyState | undefined;

  /** Releases the lock and the connections. */
  close(): Promise<void>;
}

/** One outbox row as the application wrote it. */
export interface OutboxRow {
  /** AUTO_INCREMENT id: insert order, and commit order among rows of one ordering key. */
  readonly id: number;
  readonly topic: string;
  readonly orderingKey: string;
  /** Attributes incl. `traceparent`/`tracestate` as the application wrote them. */
  readonly attributes: Record<string, string>;
  readonly data: Uint8Array;
  /**
   * How old the row was when it was read (ms since its INSERT, by the outbox database's clock),
   * and when that was (Date.now() of the broker): its age now needs neither clock to agree.
   */
  readonly ageMs: number;
  readonly readAt: number;
}

/** What the relay keeps in the outbox database between runs. */
export interface RelayState {
  /** Random, made on first use: relayed messages get the message id `outbox/<sourceId>/<row id>`. */
  readonly sourceId: string;
  /** Every id ≤ cursor was relayed, or missing when the relay passed it. */
  readonly cursor: number;
  /** Per topic: no row of this relay's that is published but not yet deleted has a lower seq. */
  readonly scanFrom: ReadonlyMap<string, number>;
  /**
   * The gaps the last relay had passed recently when it last stored its cursor, aged by the
   * outbox database's clock (so no two brokers' clocks need agree): a row that commits in one
   * later must still go before its key's next row.
   */
  readonly passedGaps: readonly PassedGap[];
}

/** Ids `lo`..`hi` the relay passed while missing (see OutboxGate), `ageMs` ago. */
export interface PassedGap {
  readonly lo: number;
  readonly hi: number;
  readonly ageMs: number;
}

/** The message id the relay gives the row `rowId` of the source `sourceId`. */
export function outboxMessageId(sourceId: string, rowId: number): string {
  return `outbox/${sourceId}/${rowId}`;
}
