import { backoffDelay } from "./backoff.js";
import { NerveBusError, storeOutOfSpace } from "./errors.js";
import { type LoggedIds, messageBytes, type NewMessage } from "./model.js";
import type { LogFn } from "./observer.js";
import { OutboxGate } from "./outbox-gate.js";
import { type OutboxRow, type OutboxSource, outboxMessageId, type RelayState } from "./outbox-source.js";
import type { PublishResult } from "./pack-appender.js";

/** What the relay needs from the broker (Broker implements it). */
export interface RelayTarget {
  publish(topic: string, messages: readonly NewMessage[], deadline: number): Promise<PublishResult>;
  /**
   * A seq no publish to `topic` that starts after this call can be below; undefined when another
   * broker of the cluster serves the topic (its log is not read here: what this relay sent
   * there is deduplicated there by message id).
   */
  nextSeq(topic: string): Promise<number | undefined>;
  /**
   * Once every seq assigned in `topic` so far is durable, the message ids stored from `fromSeq`
   * to the end, and the seq read through (none, through `fromSeq - 1`, for a topic another
   * broker serves).
   */
  durableIds(topic: string, fromSeq: number): Promise<{ through: number; ids: readonly LoggedIds[] }>;
  /** Set once the broker stops for good (shutting down, or fenced). */
  readonly closing: boolean;
}

export interface OutboxRelayOptions {
  /** Idle poll interval: an empty outbox is looked at this often. */
  readonly pollMs: number;
  /** See OutboxGate. */
  readonly gapWaitMs: number;
  /** Rows fetched (and published) per round. */
  readonly batchRows: number;
  /** The broker's pack limits: a round's rows go out in packs within them. */
  readonly maxPackMessages: number;
  readonly maxPackBytes: number;
  readonly log: LogFn;
}

/**
 * Late rows (committed inside a gap the relay passed) are looked for every round in the gaps
 * passed within LATE_FOCUS_MS (an exact range read each; the gaps are stored with the cursor,
 * so a relay after a restart or failover goes on looking where its predecessor did), and below
 * the whole cursor every FULL_SWEEP_MS (gaps passed longer ago: that read also walks deleted
 * rows InnoDB has not purged yet, so it is rare).
 */
const FULL_SWEEP_MS = 5000;
const LATE_FOCUS_MS = 60_000;
/** Gap ranges read one by one per round; beyond this, one range from the oldest. */
const MAX_LATE_RANGES = 256;
/** Payload bytes a round aims to stay under (see #adjustLimit). */
const ROUND_BYTES = 16 << 20;

/**
 * Moves committed outbox rows of one application database into the topic logs, exactly once,
 * in order (see OutboxGate), with the attributes (trace context) the application wrote.
 *
 * Exactly once across crashes, without a transaction spanning both databases: every relayed
 * message carries the message id `outbox/<source id>/<row id>`; a row is deleted from the outbox
 * only after its publish is durable, in a transaction that also raises the topic's scan-from
 * seq past it. So whatever is published but not yet deleted lies at or above its topic's
 * scan-from seq. After a restart or any failure the relay first reads each topic's ids from
 * there (once every seq assigned is durable) and deletes the rows it finds: those are never
 * published again, the others are, once. Rounds are sequential (publish n+1 starts after n is
 * durable); only the delete of round n overlaps round n+1, and deletes commit in order.
 *
 * With --cluster the outbox is held by a lease that lapses when its broker dies or freezes:
 * the relay publishes only while `source.held()`, and its delete transaction is fenced by the
 * lease. What a relay published but did not delete before it lost the outbox, and what it
 * sends to topics other brokers serve (their logs are not read here), the next relay publishes
 * again with the same message ids: the topic's dedup index (rebuilt from the log when a topic
 * moves) answers those with the first copy's seq instead of storing a second one.
 */
export class OutboxRelay {
  #gate = new OutboxGate(0, 0);
  #state: RelayState | undefined;
  readonly #known = new Set<string>();
  #deleting: Promise<void> = Promise.resolve();
  /** Rows above `cursor` being read ahead for the next round. */
  #ahead: { cursor: number; rows: Promise<OutboxRow[]> } | undefined;
  #deleteError: unknown;
  #stopped = false;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #lastFullSweep = 0;
  /** Ids of the round whose delete is in flight (a late read may still see them). */
  #deletingIds: ReadonlySet<number> = new Set();
  #limit = 16;
  /** Messages published (not counting those found published during recovery). */
  relayed = 0;
  /** Rows found already published during recovery (not published again). */
  recovered = 0;
  /** Rounds that failed (reading, publishing or deleting; each is retried after a recovery). */
  errors = 0;
  /**
   * Relay lag: the age (since its INSERT) of the oldest row of the last round when that round
   * was durable; 0 once a round finds the outbox empty.
   */
  lagMs = 0;

  /** Ids passed while missing since the last (re)start or recovery (see OutboxGate.passed). */
  get passed(): number {
    return this.#gate.passed;
  }

  constructor(
    readonly source: OutboxSource,
    private readonly target: RelayTarget,
    private readonly options: OutboxRelayOptions,
  ) {}

  /** Starts relaying in the background; failures are logged and retried with backoff. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops after the round in progress and its delete, then closes the source. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    await this.#deleting.catch(() => undefined);
    await this.source.close().catch(() => undefined);
  }

  async #run(): Promise<void> {
    let attempt = 0;
    let ready = false;
    while (!this.#stopped && !this.target.closing) {
      try {
        if (!ready) {
          await this.#recover();
          ready = true;
          attempt = 0;
        }
        const moved = await this.#round();
        attempt = 0;
        if (!moved) {
          this.lagMs = 0;
          await this.#sleep(this.#idleWait());
        }
      } catch (err) {
        if (this.#stopped || this.target.closing) break;
        this.errors++;
        ready = false;
        // A full disk is a state the store reports itself (once), and waiting ends it.
        const level =
          err instanceof NerveBusError && err.code !== "unavailable" && !storeOutOfSpace(err)
            ? "error"
            : "warn";
        if (attempt % 10 === 0)
          this.options.log(level, "outbox relay failed; recovering and retrying", {
            outbox: this.source.name,
            attempt,
            err: String(err),
          });
        await this.#sleep(backoffDelay(attempt++, 50, 5000));
      }
    }
  }

  /** Open (lock, state), settle the last delete, and delete every row already published. */
  async #recover(): Promise<void> {
    await this.#ahead?.rows.catch(() => undefined);
    this.#ahead = undefined;
    await this.#settleDelete();
    this.#deletingIds = new Set();
    const state = await this.source.open(() => !this.#stopped && !this.target.closing);
    this.#state = state;
    const prefix = outboxMessageId(state.sourceId, 0).slice(0, -1);
    const published: number[] = [];
    const scanFrom = new Map<string, number>();
    let cursor = state.cursor;
    for (const [topic, from] of state.scanFrom) {
      const { through, ids } = await this.target.durableIds(topic, from);
      for (const r of ids) {
        if (!r.messageId.startsWith(prefix)) continue;
        const id = Number(r.messageId.slice(prefix.length));
        if (!Number.isSafeInteger(id)) continue;
        published.push(id);
        // Every id below a relayed row was relayed or passed when that row was.
        if (id > cursor) cursor = id;
      }
      scanFrom.set(topic, Math.max(from, through + 1));
      this.#known.add(topic);
    }
    await this.source.complete(published, scanFrom, cursor);
    this.recovered += published.length;
    // Rows that commit later in a gap passed before must still go before their keys' next rows,
    // so the new gate watches every gap passed before: this relay's own (a recovery after a
    // failed round), those the last relay stored with its cursor (a restart, a failover), and
    // the ids between the stored cursor and the one found in the logs (the last relay's final
    // rounds, whose gaps were not stored).
    const now = Date.now();
    const gaps = [...this.#gate.passedGaps(now, LATE_FOCUS_MS, MAX_LATE_RANGES), ...state.passedGaps];
    if (cursor > state.cursor) gaps.push({ lo: state.cursor + 1, hi: cursor, ageMs: 0 });
    const gate = new OutboxGate(cursor, this.options.gapWaitMs);
    gate.inherit(gaps, now);
    this.#gate = gate;
    // The first round sweeps everything below the cursor, whenever the last sweep was: the
    // cursor may now stand above rows never published (the last round of a relay that died or
    // lost the outbox in a cluster, sent to other brokers' topics; late rows the failed round
    // had read), and a key's later rows above the cursor must not go before them.
    this.#lastFullSweep = 0;
    if (published.length > 0)
      this.options.log("info", "outbox relay recovered rows published before a restart or failure", {
        outbox: this.source.name,
        rows: published.length,
      });
  }

  /** One round: fetch, publish what the gate lets through, start its delete. False if idle. */
  async #round(): Promise<boolean> {
    // A delete that failed while the relay idled surfaces now, not with the next rows: an idle
    // relay would otherwise poll on, its deletes undone, on a server that turned read-only (its
    // SELECTs still work there), while the application writes to the new primary.
    if (this.#deleteError !== undefined) await this.#settleDelete();
    const now = Date.now();
    const limit = this.#limit;
    let late: OutboxRow[] = [];
    // Whether rows below the cursor may remain beyond those read: then none above it goes yet.
    let moreLate = false;
    const full = now - this.#lastFullSweep >= FULL_SWEEP_MS;
    const ranges: [number, number][] = full
      ? [[0, this.#gate.cursor]]
      : this.#gate.recentGaps(now, LATE_FOCUS_MS, MAX_LATE_RANGES);
    // Rows above the cursor are read before those below it (the read ahead was, during the last
    // round): a key's row read above was committed after every earlier row of its key (the key
    // lock), so the later read below sees those. Read the other way round, a late row and its
    // key's next transaction could both commit between the two reads, and the next one go first.
    const ahead = this.#ahead;
    this.#ahead = undefined;
    let above: OutboxRow[];
    if (ahead !== undefined && ahead.cursor === this.#gate.cursor) above = await ahead.rows;
    else {
      await ahead?.rows.catch(() => undefined);
      above = await this.source.fetch(this.#gate.cursor, limit);
    }
    if (ranges.length > 0 && this.#gate.cursor > 0) {
      const deleting = this.#deletingIds;
      const read = await this.source.fetchLate(ranges, limit);
      late = read.filter((r) => !deleting.has(r.id));
      // A sweep cut off by the limit goes on next round (from the start: what it published is
      // deleted or being deleted by then), so every row below the cursor goes before any above:
      // after a failover in a cluster, rows the last relay sent to other brokers' topics but did
      // not delete lie there, and a key's later rows above the cursor must wait for them.
      moreLate = read.length >= limit;
    }
    above = moreLate ? [] : above.slice(0, limit - late.length);
    const { ready, cursor, gaps, passedGaps } = this.#gate.admit(above, Date.now());
    const rows = late.length === 0 ? ready : [...late, ...ready];
    if (rows.length === 0) {
      if (full && !moreLate) this.#lastFullSweep = now;
      return false;
    }
    this.#adjustLimit(rows);
    // The next round's rows are read while these are published (a three-stage pipeline: read
    // n+1, publish n, delete n−1). A failure there surfaces when that round awaits them.
    const next = this.source.fetch(cursor, this.#limit);
    next.catch(() => undefined);
    this.#ahead = { cursor, rows: next };
    const scanFrom = await this.#publish(rows);
    // A sweep counts once its rows are published: a round that fails after reading them leaves
    // them below the cursor, and the next sweep must find them before anything above goes.
    if (full && !moreLate) this.#lastFullSweep = now;
    this.#gate.advance(cursor, gaps, passedGaps);
    this.relayed += rows.length;
    const durableAt = Date.now();
    let lag = 0;
    for (const r of rows) lag = Math.max(lag, r.ageMs + durableAt - r.readAt);
    this.lagMs = lag;
    await this.#settleDelete();
    const ids = rows.map((r) => r.id);
    this.#deletingIds = new Set(ids);
    // The gaps go with the cursor, fenced like it: the next relay (after a restart or failover)
    // takes them over.
    const passing = this.#gate.passedGaps(Date.now(), LATE_FOCUS_MS, MAX_LATE_RANGES);
    this.#deleting = this.source.complete(ids, scanFrom, this.#gate.cursor, passing).then(
      () => {
        this.#deletingIds = new Set();
      },
      (err: unknown) => {
        this.#deleteError = err;
      },
    );
    // A full round means more is waiting; a partial one, that the next poll may wait.
    return rows.length > 0;
  }

  /**
   * Rows per round start small and grow fourfold while rounds are full and under ROUND_BYTES, halving
   * when over: rows can be up to --max-message-bytes each, and a round is held in memory (with
   * the next one being read), so memory stays near 2 × ROUND_BYTES whatever the rows hold.
   */
  #adjustLimit(rows: readonly OutboxRow[]): void {
    let bytes = 0;
    for (const r of rows) bytes += r.data.byteLength;
    if (bytes > ROUND_BYTES) this.#limit = Math.max(1, Math.floor(this.#limit / 2));
    else if (rows.length >= this.#limit) this.#limit = Math.min(this.options.batchRows, this.#limit * 4);
  }

  /** Publishes rows (topic by topic, in id order; topics in parallel); returns each topic's next scan-from seq. */
  async #publish(rows: readonly OutboxRow[]): Promise<Map<string, number>> {
    const state = this.#state!;
    const byTopic = new Map<string, NewMessage[]>();
    for (const r of rows) {
      let list = byTopic.get(r.topic);
      if (list === undefined) {
        list = [];
        byTopic.set(r.topic, list);
      }
      list.push({
        data: r.data,
        attributes: r.attributes,
        orderingKey: r.orderingKey,
        messageId: outboxMessageId(state.sourceId, r.id),
        deliverAt: 0,
      });
    }
    const scanFrom = new Map<string, number>();
    await Promise.all(
      [...byTopic].map(async ([topic, messages]) => {
        if (!this.#known.has(topic)) {
          const next = await this.target.nextSeq(topic);
          if (next !== undefined) {
            await this.source.addTopic(topic, next);
            this.#known.add(topic);
          }
        }
        let last = 0;
        for (const pack of this.#packs(messages)) {
          if (!this.source.held())
            throw new NerveBusError("unavailable", `outbox ${this.source.name}: the relay lost the outbox`);
          const result = await this.target.publish(topic, pack, Number.POSITIVE_INFINITY);
          const { seq } = result.results;
          for (let i = 0; i < seq.length; i++) if (seq[i]! > last) last = seq[i]!;
        }
        if (last > 0) scanFrom.set(topic, last + 1);
      }),
    );
    return scanFrom;
  }

  *#packs(messages: NewMessage[]): Generator<NewMessage[]> {
    let start = 0;
    let bytes = 0;
    for (let i = 0; i < messages.length; i++) {
      const b = messageBytes(messages[i]!);
      if (i > start && (i - start >= this.options.maxPackMessages || bytes + b > this.options.maxPackBytes)) {
        yield messages.slice(start, i);
        start = i;
        bytes = 0;
      }
      bytes += b;
    }
    if (start < messages.length) yield messages.slice(start);
  }

  /** Waits for the delete in flight; rethrows its failure (the caller recovers). */
  async #settleDelete(): Promise<void> {
    await this.#deleting;
    const err = this.#deleteError;
    if (err !== undefined) {
      this.#deleteError = undefined;
      throw err;
    }
  }

  #idleWait(): number {
    const release = this.#gate.nextRelease(Date.now());
    return release === undefined ? this.options.pollMs : Math.max(1, Math.min(this.options.pollMs, release));
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}
