import type { NewMessage } from "./model.js";

/**
 * A topic's declared payload type: a protobuf message type and the descriptor set that defines
 * it. The core keeps it as bytes; checking payloads against it is a SchemaValidator's job, so
 * the core needs no protobuf runtime.
 */
export interface TopicSchema {
  /** Full name, e.g. `shop.v1.Order`. */
  readonly messageType: string;
  /** A serialized google.protobuf.FileDescriptorSet. */
  readonly descriptorSet: Uint8Array;
  /** When it was set, ms since epoch. */
  readonly updatedAt: number;
}

/** 4 MiB: a descriptor set of a large API with its imports is well under 1 MiB. */
export const MAX_DESCRIPTOR_SET_BYTES = 4 << 20;

/** Checks payloads against topic schemas (implemented outside the core with a protobuf runtime). */
export interface SchemaValidator {
  /** Throws INVALID_ARGUMENT naming the field when the descriptor set is unusable or lacks the type. */
  prepare(schema: TopicSchema): void;
  /** Throws INVALID_ARGUMENT naming `messages[i].data` and the parse error for the first payload that does not parse. */
  check(schema: TopicSchema, messages: readonly NewMessage[]): void;
}
