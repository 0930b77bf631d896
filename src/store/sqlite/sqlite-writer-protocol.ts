import { type ErrorCode, NerveBusError, OutOfSpaceError } from "../../core/index.js";
import { mapStoreError } from "../errors.js";
import type { SqliteStore } from "./sqlite-store.js";

/** The SqliteStore methods the writer thread runs: every write, and close. */
export type WriteMethod =
  | "ensureTopic"
  | "updateTopicConfig"
  | "deleteTopic"
  | "saveTopicSchema"
  | "ensureSubscription"
  | "updateSubscriptionConfig"
  | "deleteSubscription"
  | "insertEncoded"
  | "deleteMessagesThrough"
  | "recoverTail"
  | "scheduleMessages"
  | "deleteScheduled"
  | "savePointers"
  | "close";

/** One write as sent to the writer thread: a method of its SqliteStore and the arguments. */
export interface WriteOp<M extends WriteMethod = WriteMethod> {
  readonly method: M;
  readonly args: Parameters<SqliteStore[M]>;
}

/** A store error across the thread boundary (structured clone keeps no class). */
export interface SentError {
  readonly code: ErrorCode;
  readonly message: string;
  /** The driver's code (SQLITE_BUSY…), kept on the rebuilt error's cause. */
  readonly causeCode: string | undefined;
  /** For an OutOfSpaceError: its place (the file). */
  readonly place?: string;
}

/** What the writer thread answers: once whether it opened, then a result per op of each batch. */
export type FromWriter =
  | { readonly kind: "ready" }
  | { readonly kind: "open-failed"; readonly error: SentError }
  | { readonly kind: "done"; readonly results: readonly WriteResult[] };

/** The outcome of one op, in the order the batch gave them. */
export type WriteResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: SentError };

/** A failure as the writer thread sends it: the same NerveBusError the in-thread store throws. */
export function sendError(err: unknown, what: string): SentError {
  const mapped = mapStoreError(err, what);
  const causeCode = (mapped.cause as { code?: unknown } | undefined)?.code;
  return {
    code: mapped.code,
    message: mapped.message,
    causeCode: typeof causeCode === "string" ? causeCode : undefined,
    ...(mapped instanceof OutOfSpaceError ? { place: mapped.place } : {}),
  };
}

/** The error sendError described, rebuilt on the broker's thread. */
export function receiveError(e: SentError): NerveBusError {
  const cause =
    e.causeCode === undefined ? undefined : Object.assign(new Error(e.message), { code: e.causeCode });
  return e.place === undefined
    ? new NerveBusError(e.code, e.message, { cause })
    : new OutOfSpaceError(e.place, e.message, { cause });
}
