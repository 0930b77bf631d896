import { createHash } from "node:crypto";
import { NotOwnerError } from "./cluster.js";
import type { NewMessage } from "./model.js";
import type { DeadLetter, Subscription } from "./subscription.js";
import type { Topic } from "./topic.js";

/** Attributes a dead-lettered message carries, naming where it came from and why. */
export const DLQ_ATTRIBUTES = {
  sourceTopic: "nervebus-dlq-source-topic",
  subscription: "nervebus-dlq-subscription",
  seq: "nervebus-dlq-seq",
  attempts: "nervebus-dlq-attempts",
  reason: "nervebus-dlq-reason",
} as const;

/**
 * The message id of the dead letter of `seq` from `sub`: the same each time that message is
 * dead-lettered from that subscription, another for any other (the hash covers the source
 * topic's and the subscription's names, the topic's id and both creation times, so a topic or
 * subscription made again under the same name starts anew). Letters forwarded to another broker
 * go in several packs, and a forward that failed part way is sent again whole: the dead-letter
 * topic's dedup window then answers the letters stored before with their first copy's seq.
 * 128 bits of SHA-256, then the seq: well within MAX_MESSAGE_ID_BYTES.
 */
export function deadLetterId(sub: Subscription, seq: number): string {
  const t = sub.topic.record;
  const source = JSON.stringify([t.name, t.id, t.createdAt, sub.name, sub.record.createdAt]);
  return `nervebus-dlq/${createHash("sha256").update(source).digest("base64url").slice(0, 22)}/${seq}`;
}

/**
 * Sends dead letters to the broker of the cluster that owns their dead-letter topic (which
 * appends them as its own); resolves once they are durable there.
 */
export type DeadLetterForwarder = (
  ownerAddress: string,
  topic: string,
  messages: NewMessage[],
) => Promise<void>;

/**
 * Moves dead letters to their subscription's dead-letter topic: each keeps its payload,
 * attributes and ordering key, gains the DLQ_ATTRIBUTES, and is appended as a new message with
 * the message id deadLetterId gives it (not the producer's), so the dead-letter topic's dedup
 * window stores it once however often it is sent (a message dead-lettered again from the same
 * subscription within that window, after a seek back, is stored once too). A subscription
 * without a dead-letter topic drops them. With several brokers (`--cluster`), letters whose
 * topic another broker owns are forwarded to it.
 */
export class DeadLetterRouter {
  constructor(
    /** The topic named `name` (created when the broker auto-creates topics; else NOT_FOUND). */
    private readonly topic: (name: string) => Promise<Topic>,
    /** Appends broker-made messages (see PackAppender.appendNow); resolves once durable. */
    private readonly append: (topic: Topic, messages: NewMessage[]) => Promise<unknown>,
    /** Where letters go whose topic another broker owns (none: they wait until it is here). */
    private readonly forward?: DeadLetterForwarder,
  ) {}

  /** Resolves once the letters are durable in the dead-letter topic (or dropped). */
  async route(sub: Subscription, letters: readonly DeadLetter[]): Promise<void> {
    const target = sub.config.deadLetterTopic;
    if (target === "" || letters.length === 0) return;
    const messages: NewMessage[] = letters.map(({ message, attempts, reason }) => ({
      data: message.data,
      attributes: {
        ...message.attributes,
        [DLQ_ATTRIBUTES.sourceTopic]: sub.topic.record.name,
        [DLQ_ATTRIBUTES.subscription]: sub.name,
        [DLQ_ATTRIBUTES.seq]: String(message.seq),
        [DLQ_ATTRIBUTES.attempts]: String(attempts),
        [DLQ_ATTRIBUTES.reason]: reason,
      },
      orderingKey: message.orderingKey,
      messageId: deadLetterId(sub, message.seq),
      deliverAt: 0,
      priority: message.priority,
    }));
    let topic: Topic;
    try {
      topic = await this.topic(target);
    } catch (err) {
      // The subscription retries a failure later, so a forward that fails is tried again.
      if (err instanceof NotOwnerError && err.ownerAddress !== "" && this.forward !== undefined)
        return this.forward(err.ownerAddress, target, messages);
      throw err;
    }
    await this.append(topic, messages);
  }
}
