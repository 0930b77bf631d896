import { invalidArgument } from "./errors.js";

/** Names of topics and subscriptions: 1–128 characters of [A-Za-z0-9._-]. */
const NAME_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/** Throws INVALID_ARGUMENT naming `field` unless `name` is a valid topic or subscription name. */
export function validateName(field: string, name: string): void {
  // "." and ".." would be collapsed as path segments by HTTP clients (the status page's API).
  if (name === "." || name === "..")
    throw invalidArgument(field, `${JSON.stringify(name)} is not a usable name`);
  if (NAME_PATTERN.test(name)) return;
  if (name.length === 0) throw invalidArgument(field, "must not be empty");
  if (name.length > 128) throw invalidArgument(field, `is ${name.length} characters; the limit is 128`);
  const bad = [...name].find((c) => !/[A-Za-z0-9._-]/.test(c)) ?? "";
  throw invalidArgument(field, `contains ${JSON.stringify(bad)}; allowed are A-Z a-z 0-9 . _ -`);
}

/** Size limits on what producers send, enforced before anything is buffered. */
export interface PublishLimits {
  /** Largest message: data + attribute keys and values + ordering key + message id. */
  readonly maxMessageBytes: number;
  /** Most messages in one pack. */
  readonly maxPackMessages: number;
  /** Largest pack, summed over its messages. */
  readonly maxPackBytes: number;
}

/** Ordering keys longer than this are refused: they are kept in memory per in-flight key. */
export const MAX_ORDERING_KEY_BYTES = 1024;
/** Message ids longer than this are refused: they are indexed for deduplication. */
export const MAX_MESSAGE_ID_BYTES = 256;
/** Delays beyond this are refused (7 days, the longest schedule kept). */
export const MAX_DELAY_MS = 7 * 24 * 3600 * 1000;
