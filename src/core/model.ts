/**
 * Domain types shared by the core and the stores. No protobuf types here: the API layer
 * translates wire messages into these.
 */

/** A message as a producer hands it to the broker, already validated. */
export interface NewMessage {
  readonly data: Uint8Array;
  readonly attributes: Record<string, string>;
  readonly orderingKey: string;
  readonly messageId: string;
  /** Deliver no earlier than this (ms since epoch); 0 for now. */
  readonly deliverAt: number;
}

/** A message in a topic's log. */
export interface LogMessage {
  readonly seq: number;
  /** Append time, ms since epoch. */
  readonly publishTime: number;
  readonly data: Uint8Array;
  readonly attributes: Record<string, string>;
  readonly orderingKey: string;
  readonly messageId: string;
}

/** Rough memory and wire size of a message, used for windows and buffer budgets. */
export function messageBytes(m: {
  data: Uint8Array;
  attributes: Record<string, string>;
  orderingKey: string;
  messageId: string;
}): number {
  let n = m.data.byteLength + m.orderingKey.length + m.messageId.length;
  for (const k in m.attributes) n += k.length + (m.attributes[k]?.length ?? 0);
  return n;
}

/** Where a new subscription starts. */
export type StartPosition =
  | { readonly kind: "earliest" }
  | { readonly kind: "latest" }
  | { readonly kind: "seq"; readonly seq: number }
  | { readonly kind: "time"; readonly time: number };

/** A topic as the catalog stores it. Table names derive from `id`, never from `name`. */
export interface TopicRecord {
  readonly id: number;
  readonly name: string;
  readonly shards: number;
  readonly createdAt: number;
}

/** A subscription as the catalog stores it. */
export interface SubscriptionRecord {
  readonly topicId: number;
  readonly name: string;
  readonly createdAt: number;
}

/**
 * A persisted pointer: `ptr` plus an opaque state blob. The subscription "" of a topic is its
 * writer watermark; any other is a subscription's floor and state.
 */
export interface PointerRecord {
  readonly subscription: string;
  readonly ptr: number;
  readonly state: Uint8Array | null;
}
