import { newTraceparent, traceIdOf } from "../wire/index.js";
import { invalidArgument } from "./errors.js";
import { messageBytes, type NewMessage } from "./model.js";
import type { DelayScheduler } from "./scheduler.js";
import type { MessageOutcome, Topic } from "./topic.js";
import type { WriteBudget } from "./write-budget.js";

/** The answer to a SendPack. */
export interface PublishResult {
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** Per message, in pack order. */
  readonly results: readonly MessageOutcome[];
}

/** How long before a call's deadline the broker gives up waiting and answers. */
const DEADLINE_MARGIN_MS = 100;

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
   * (Infinity for none). Throws INVALID_ARGUMENT for a delayed message on an ephemeral topic.
   */
  async publish(
    topic: Topic,
    scheduler: DelayScheduler,
    messages: readonly NewMessage[],
    bytes: number,
    deadline: number,
  ): Promise<PublishResult> {
    const now = Date.now();
    const delayed: number[] = [];
    for (let i = 0; i < messages.length; i++) if (messages[i]!.deliverAt > now) delayed.push(i);
    if (delayed.length === 0) return this.append(topic, messages, bytes, deadline);
    if (topic.ephemeral) {
      throw invalidArgument(
        `messages[${delayed[0]}].deliver_at`,
        `topic ${topic.record.name} is ephemeral and keeps no delayed messages`,
      );
    }
    const immediate = messages.filter((m) => m.deliverAt <= now);
    const appended =
      immediate.length > 0
        ? await this.append(topic, immediate, bytesOf(immediate), deadline)
        : { firstSeq: 0, lastSeq: 0, results: [] };
    const scheduledResults = await this.#schedule(
      topic,
      scheduler,
      delayed.map((i) => messages[i]!),
    );
    const results: MessageOutcome[] = [];
    let a = 0;
    let d = 0;
    for (let i = 0; i < messages.length; i++)
      results.push(messages[i]!.deliverAt > now ? scheduledResults[d++]! : appended.results[a++]!);
    return { firstSeq: appended.firstSeq, lastSeq: appended.lastSeq, results };
  }

  /**
   * Appends messages the broker makes itself (due delayed messages with their schedule ids,
   * dead letters), with the confirm timeout as their deadline.
   */
  appendNow(topic: Topic, messages: readonly NewMessage[], scheduleIds?: number[]): Promise<PublishResult> {
    return this.append(topic, messages, bytesOf(messages), Date.now() + this.confirmTimeoutMs, scheduleIds);
  }

  /** Takes `bytes` of the write budget (waiting for room), then appends; resolves once durable. */
  async append(
    topic: Topic,
    messages: readonly NewMessage[],
    bytes: number,
    deadline: number,
    scheduleIds?: number[],
  ): Promise<PublishResult> {
    if (topic.needsIndexes(messages, scheduleIds !== undefined)) await topic.indexesReady;
    // Answer a little before the caller's deadline, so it gets our status (RESOURCE_EXHAUSTED,
    // UNAVAILABLE) rather than its own DEADLINE_EXCEEDED.
    const effectiveDeadline = Math.min(deadline - DEADLINE_MARGIN_MS, Date.now() + this.confirmTimeoutMs);
    const wait = this.budget.acquire(bytes, effectiveDeadline);
    if (wait !== undefined) await wait;
    return topic.append(messages, bytes, effectiveDeadline, scheduleIds);
  }

  async #schedule(
    topic: Topic,
    scheduler: DelayScheduler,
    messages: NewMessage[],
  ): Promise<MessageOutcome[]> {
    if (topic.needsIndexes(messages, false)) await topic.indexesReady;
    const now = Date.now();
    const results: MessageOutcome[] = new Array(messages.length);
    const fresh: { dueAt: number; message: NewMessage }[] = [];
    const freshIndex: number[] = [];
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const original =
        m.messageId !== "" && topic.dedup.windowMs > 0 ? topic.dedup.get(m.messageId, now) : undefined;
      if (original !== undefined) {
        results[i] = {
          outcome: "duplicate",
          seq: Math.max(0, original),
          traceId: traceIdOf(m.attributes.traceparent) ?? "",
        };
        continue;
      }
      // The trace starts now, at publish, so SendPack can return it and the delivery carries it.
      const message =
        m.attributes.traceparent === undefined
          ? { ...m, attributes: { ...m.attributes, traceparent: newTraceparent() } }
          : m;
      fresh.push({ dueAt: m.deliverAt, message });
      freshIndex.push(i);
    }
    if (fresh.length > 0) await scheduler.schedule(fresh);
    for (let k = 0; k < fresh.length; k++) {
      const m = fresh[k]!.message;
      if (m.messageId !== "") topic.dedup.set(m.messageId, 0, now);
      results[freshIndex[k]!] = {
        outcome: "scheduled",
        seq: 0,
        traceId: traceIdOf(m.attributes.traceparent) ?? "",
      };
    }
    return results;
  }
}

function bytesOf(messages: readonly NewMessage[]): number {
  let n = 0;
  for (const m of messages) n += messageBytes(m);
  return n;
}
