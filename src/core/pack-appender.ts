import { newTraceparent, type Pack, packOf, traceIdOf } from "../wire/index.js";
import { answerBy, settleBy } from "./answer-by.js";
import { monotonicNow } from "./clock.js";
import { invalidArgument, NerveBusError } from "./errors.js";
import type { NewMessage } from "./model.js";
import { DUPLICATE, Outcomes, SCHEDULED } from "./outcomes.js";
import type { DelayScheduler } from "./scheduler.js";
import type { Topic } from "./topic.js";
import type { WriteBudget } from "./write-budget.js";

/** The answer to a SendPack. */
export interface PublishResult {
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** Per message, in pack order. */
  readonly results: Outcomes;
}

/**
 * Puts validated messages into a topic: immediate ones are appended once the write budget has
 * room for them (within the call's deadline), delayed ones go to the topic's schedule. Every
 * append of the broker goes through here, so every one is bounded by the same budget.
 */
export class PackAppender {
  constructor(
    private readonly budget: WriteBudget,
    /** How long a pack may wait for its confirm when the call has no deadline. */
    private readonly confirmTimeoutMs: number,
  ) {}

  /**
   * When the broker answers a call whose deadline is `deadline` (ms since epoch, Infinity for
   * none) if what it waits for has not happened: before the deadline (answerBy), and after the
   * confirm timeout at the latest.
   */
  answerAt(deadline: number, now: number): number {
    return Math.min(answerBy(deadline, now), now + this.confirmTimeoutMs);
  }

  /**
   * Appends a producer's pack of `bytes` to `topic`; messages due later go to `scheduler`
   * (durably) and get their seq when due. `deadline` is the call's deadline in ms since epoch
   * (Infinity for none). Throws INVALID_ARGUMENT for a delayed message on an ephemeral topic,
   * RESOURCE_EXHAUSTED while the store is out of disk space (delayed messages are stored too),
   * UNAVAILABLE when what it waits for does not happen by answerAt.
   */
  async publish(
    topic: Topic,
    scheduler: DelayScheduler,
    pack: Pack,
    bytes: number,
    deadline: number,
  ): Promise<PublishResult> {
    const full = topic.outOfSpace();
    if (full !== undefined) throw full;
    const now = Date.now();
    const delayed: number[] = [];
    const immediate: number[] = [];
    const deliverAt = pack.deliverAt;
    if (deliverAt !== undefined)
      for (let i = 0; i < pack.count; i++) (deliverAt[i]! > now ? delayed : immediate).push(i);
    if (delayed.length === 0) return this.append(topic, pack, bytes, deadline);
    if (topic.ephemeral) {
      throw invalidArgument(
        `messages[${delayed[0]}].deliver_at`,
        `topic ${topic.record.name} is ephemeral and keeps no delayed messages`,
      );
    }
    const answerAt = this.answerAt(deadline, now);
    // Before any of the pack is appended: a wait cut short later would leave it half written.
    await this.#indexesReady(topic, pack.messageIds !== undefined, answerAt);
    const results = new Outcomes(pack.count, undefined);
    let firstSeq = 0;
    let lastSeq = 0;
    if (immediate.length > 0) {
      const part = pack.select(immediate);
      const appended = await this.append(topic, part, bytesOf(part), deadline);
      for (let k = 0; k < immediate.length; k++) results.copy(immediate[k]!, appended.results, k);
      firstSeq = appended.firstSeq;
      lastSeq = appended.lastSeq;
    }
    const scheduled = await this.#schedule(
      topic,
      scheduler,
      delayed.map((i) => pack.message(i)),
      answerAt,
    );
    for (let k = 0; k < delayed.length; k++) results.copy(delayed[k]!, scheduled, k);
    return { firstSeq, lastSeq, results };
  }

  /**
   * Appends messages the broker makes itself (due delayed messages with their schedule ids,
   * dead letters), with the confirm timeout as their deadline.
   */
  appendNow(topic: Topic, messages: readonly NewMessage[], scheduleIds?: number[]): Promise<PublishResult> {
    const pack = packOf(messages);
    return this.append(topic, pack, bytesOf(pack), Date.now() + this.confirmTimeoutMs, scheduleIds);
  }

  /**
   * Takes `bytes` of the write budget (waiting for room), then appends; resolves once durable.
   * Refused at once (RESOURCE_EXHAUSTED) while the store is out of disk space, not after a
   * wait for budget that packs stuck behind the full disk hold.
   */
  async append(
    topic: Topic,
    pack: Pack,
    bytes: number,
    deadline: number,
    scheduleIds?: number[],
  ): Promise<PublishResult> {
    const full = topic.outOfSpace();
    if (full !== undefined) throw full;
    await this.#indexesReady(
      topic,
      scheduleIds !== undefined || pack.messageIds !== undefined,
      this.answerAt(deadline, Date.now()),
    );
    const now = Date.now();
    // The call is over (its client already has DEADLINE_EXCEEDED): appending now would only
    // store a pack nobody learns the seqs of. Refused before it has seqs, so "nothing written"
    // is true.
    if (deadline <= now)
      throw new NerveBusError(
        "deadline_exceeded",
        "the call's deadline passed before the pack was appended; nothing was written",
      );
    // Answer before the caller's deadline, so it gets our status (RESOURCE_EXHAUSTED,
    // UNAVAILABLE) rather than its own DEADLINE_EXCEEDED.
    const effectiveDeadline = this.answerAt(deadline, now);
    const wait = this.budget.acquire(bytes, effectiveDeadline);
    if (wait !== undefined) await wait;
    return topic.append(pack, bytes, effectiveDeadline, scheduleIds);
  }

  /**
   * Waits (until `answerAt`, then UNAVAILABLE: nothing was written) for the topic's dedup and
   * moved-schedule indexes when a pack `withIds` needs them: after a restart they are rebuilt
   * from the store, which may be slow or unreachable.
   */
  async #indexesReady(topic: Topic, withIds: boolean, answerAt: number): Promise<void> {
    if (!topic.needsIndexes(withIds)) return;
    await settleBy(
      topic.indexesReady,
      answerAt,
      () =>
        new NerveBusError(
          "unavailable",
          `topic ${topic.record.name} is still rebuilding its dedup index from the store after a restart; nothing was written: retry`,
        ),
    );
  }

  /**
   * Schedules a pack's delayed messages (the topic's indexes are ready: see publish); a copy
   * of a message whose schedule write is in progress is a duplicate once that write is
   * durable. UNAVAILABLE, outcome unknown, when the writes are not durable by `answerAt`.
   */
  async #schedule(
    topic: Topic,
    scheduler: DelayScheduler,
    messages: NewMessage[],
    answerAt: number,
  ): Promise<Outcomes> {
    const now = monotonicNow();
    const dedupOn = topic.dedup.windowMs > 0;
    const results = new Outcomes(messages.length, undefined);
    const fresh: { dueAt: number; message: NewMessage }[] = [];
    // Ids of this pack's fresh messages → their trace ids: a later copy in the pack is a duplicate.
    const inPack = new Map<string, string>();
    // Schedule writes of other packs that hold copies of this pack's messages.
    const originals: Promise<unknown>[] = [];
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const id = dedupOn ? m.messageId : "";
      if (id !== "") {
        const writing = scheduler.writing(id);
        const original = writing === undefined ? topic.dedup.get(id, now) : 0;
        const first = inPack.get(id);
        if (writing !== undefined) originals.push(writing);
        if (original !== undefined || first !== undefined) {
          results.set(
            i,
            DUPLICATE,
            Math.max(0, original ?? 0),
            first ?? traceIdOf(m.attributes.traceparent) ?? "",
          );
          continue;
        }
      }
      // The trace starts now, at publish, so SendPack can return it and the delivery carries it.
      const message =
        m.attributes.traceparent === undefined
          ? { ...m, attributes: { ...m.attributes, traceparent: newTraceparent() } }
          : m;
      const traceId = traceIdOf(message.attributes.traceparent) ?? "";
      if (id !== "") inPack.set(id, traceId);
      fresh.push({ dueAt: m.deliverAt, message });
      results.set(i, SCHEDULED, 0, traceId);
    }
    // A copy is confirmed only once its original is durable; when that write fails, so does
    // this pack, and the producer's retry schedules the message anew.
    const writes = fresh.length > 0 ? [scheduler.schedule(fresh), ...originals] : originals;
    // Writes cut short here go on: once durable, a retry with the same ids finds them.
    if (writes.length > 0) await settleBy(Promise.all(writes), answerAt, notScheduled);
    return results;
  }
}

/** The answer to delayed messages whose schedule write is not durable by the call's deadline. */
function notScheduled(): NerveBusError {
  return new NerveBusError(
    "unavailable",
    "delayed messages not durably scheduled before the call's deadline; outcome unknown: they may still be scheduled, so retry with the same message ids",
  );
}

/** Bytes of a pack as limits count them (as sent). */
function bytesOf(pack: Pack): number {
  let n = 0;
  for (let i = 0; i < pack.count; i++) n += pack.sentBytes[i]!;
  return n;
}
