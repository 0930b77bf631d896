import { newTraceparent, type Pack, packOf, traceIdOf } from "../wire/index.js";
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
 * How long before a call's deadline the broker gives up waiting and answers: room for the
 * answer to reach the client and for a busy event loop to run the timer late.
 */
const DEADLINE_MARGIN_MS = 100;

/**
 * When the broker stops waiting for a pack of a call whose deadline is `deadline` (ms since
 * epoch): DEADLINE_MARGIN_MS before it, or, for a call with less time than twice that left,
 * halfway to it, so a short deadline still leaves the store time to confirm and gets the
 * broker's answer when it cannot.
 */
function answerBy(deadline: number, now: number): number {
  return deadline - Math.min(DEADLINE_MARGIN_MS, (deadline - now) / 2);
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
   * Appends a producer's pack of `bytes` to `topic`; messages due later go to `scheduler`
   * (durably) and get their seq when due. `deadline` is the call's deadline in ms since epoch
   * (Infinity for none). Throws INVALID_ARGUMENT for a delayed message on an ephemeral topic,
   * RESOURCE_EXHAUSTED while the store is out of disk space (delayed messages are stored too).
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
    if (topic.needsIndexes(scheduleIds !== undefined || pack.messageIds !== undefined))
      await topic.indexesReady;
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
    const effectiveDeadline = Math.min(answerBy(deadline, now), now + this.confirmTimeoutMs);
    const wait = this.budget.acquire(bytes, effectiveDeadline);
    if (wait !== undefined) await wait;
    return topic.append(pack, bytes, effectiveDeadline, scheduleIds);
  }

  async #schedule(topic: Topic, scheduler: DelayScheduler, messages: NewMessage[]): Promise<Outcomes> {
    if (topic.needsIndexes(messages.some((m) => m.messageId !== ""))) await topic.indexesReady;
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
    if (fresh.length > 0) await scheduler.schedule(fresh);
    // A copy is confirmed only once its original is durable; when that write fails, so does
    // this pack, and the producer's retry schedules the message anew.
    await Promise.all(originals);
    return results;
  }
}

/** Bytes of a pack as limits count them (as sent). */
function bytesOf(pack: Pack): number {
  let n = 0;
  for (let i = 0; i < pack.count; i++) n += pack.sentBytes[i]!;
  return n;
}
