/**
 * The one domain error type. Every failure that reaches a caller is a NerveBusError whose code
 * maps 1:1 to a gRPC status code at the API edge (src/api/status.ts) and to an exit message in
 * the CLI. The message names the field or limit involved; `cause` keeps the original error.
 */
export type ErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "unavailable"
  | "deadline_exceeded"
  | "cancelled"
  | "internal"
  // Stored bytes that are not what the broker wrote (a corrupt row): they cannot be served.
  | "data_loss"
  // The caller is not known (no or bad credentials) / known but lacks the right (src/auth).
  | "unauthenticated"
  | "permission_denied";

export class NerveBusError extends Error {
  override readonly name = "NerveBusError";
  /** For RESOURCE_EXHAUSTED: how long the caller should wait before retrying (ms). */
  readonly retryAfterMs: number | undefined;
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterMs?: number },
  ) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/**
 * Stored rows of a topic whose bytes are not what the broker wrote: DATA_LOSS naming their seqs,
 * so that whoever read them can go on past them (an index rebuild) or say how (a subscription).
 */
export class CorruptRowsError extends NerveBusError {
  constructor(
    readonly firstSeq: number,
    readonly lastSeq: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super("data_loss", message, options);
  }
}

/**
 * The error of stored rows of `topic` (seqs first…last) whose bytes are not what the broker
 * wrote: names them and how a subscription gets past them (README, "How it works", corrupt rows).
 */
export function corruptRows(topic: string, first: number, last: number, cause: unknown): CorruptRowsError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  const seqs = first === last ? `seq ${first}` : `seqs ${first}–${last}`;
  return new CorruptRowsError(
    first,
    last,
    `topic ${JSON.stringify(topic)}: the stored row of ${seqs} is corrupt (${detail}); its messages cannot be read. A subscription gets past them with: nervebus sub seek ${topic} SUBSCRIPTION --to ${last + 1}`,
    { cause },
  );
}

/**
 * A seq a client sent, for an error message: past 2^53 it arrived rounded (a uint64 read as
 * a number), so printing it would name a seq the client never sent.
 */
export function seqText(seq: number): string {
  return Number.isSafeInteger(seq) || !Number.isFinite(seq) || seq < 0 ? String(seq) : "past 2^53";
}

/** Shorthand for the most common error: a bad value in a named field. */
export function invalidArgument(field: string, problem: string): NerveBusError {
  return new NerveBusError("invalid_argument", `${field}: ${problem}`);
}

/** Wraps anything thrown into a NerveBusError, keeping NerveBusErrors as they are. */
export function asNerveBusError(err: unknown): NerveBusError {
  if (err instanceof NerveBusError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new NerveBusError("internal", message, { cause: err });
}

/**
 * RESOURCE_EXHAUSTED because the store's disk is full: a write failed so, or a publish is
 * refused while it is (see Store.outOfSpace). `place` names the SQLite file or
 * HOST:PORT/DATABASE. The stores make it (src/store/errors.ts); its class tells it apart from
 * other RESOURCE_EXHAUSTED answers (a full write buffer) without reading messages.
 */
export class OutOfSpaceError extends NerveBusError {
  constructor(
    readonly place: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super("resource_exhausted", message, options);
  }
}

/**
 * Whether a store call failed because the store is out of disk space. The store logs that
 * state once when it starts and once when it ends, so retry loops stay quiet about it instead
 * of logging every try.
 */
export function storeOutOfSpace(err: unknown): err is OutOfSpaceError {
  return err instanceof OutOfSpaceError;
}
