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
 * attributes and ordering key, gains the DLQ_ATTRIBUTES, and is appended as a new message (no
 * message id: the dead-letter topic's dedup window does not apply to it). A subscription without
 * a dead-letter topic drops them. With several brokers (`--cluster`), letters whose topic
 * another broker owns are forwarded to it.
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
      messageId: "",
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
