import { Metadata, status } from "@grpc/grpc-js";

/** gRPC status codes (re-exported so callers need not import @grpc/grpc-js). */
export const StatusCode = status;
/** A gRPC status code. */
export type StatusCode = status;

/**
 * The one error type of the client: a failed RPC, a stream that ended with an error, or a
 * client-side refusal (for example publishing on a closed publisher). `code` is the gRPC
 * status code; `details` is the broker's message, which names the field or limit involved.
 */
export class NerveBusError extends Error {
  override readonly name = "NerveBusError";
  /** The gRPC status code. */
  readonly code: StatusCode;
  /** The status details as sent by the broker (or the client's own explanation). */
  readonly details: string;
  /** Trailing metadata of the failed call, when there was a call. */
  readonly metadata: Metadata;

  constructor(code: StatusCode, details: string, options?: { cause?: unknown; metadata?: Metadata }) {
    super(
      `${status[code] ?? code}: ${details}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.details = details;
    this.metadata = options?.metadata ?? new Metadata();
  }

  /** The code's name, e.g. "INVALID_ARGUMENT". */
  get codeName(): string {
    return status[this.code] ?? String(this.code);
  }
}

/** Whether `err` looks like a grpc-js ServiceError (an Error with a numeric status code). */
function isServiceError(
  err: unknown,
): err is Error & { code: number; details?: string; metadata?: Metadata } {
  return err instanceof Error && typeof (err as { code?: unknown }).code === "number";
}

/** Converts anything thrown by grpc-js (or elsewhere) into a NerveBusError; keeps NerveBusErrors. */
export function toNerveBusError(err: unknown): NerveBusError {
  if (err instanceof NerveBusError) return err;
  if (isServiceError(err)) {
    const code = err.code in status ? (err.code as status) : status.UNKNOWN;
    return new NerveBusError(code, err.details ?? err.message, { cause: err, metadata: err.metadata });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new NerveBusError(status.UNKNOWN, message, { cause: err });
}

/** A NerveBusError from a gRPC status object (as streams report it). */
export function errorFromStatus(s: { code: status; details: string; metadata?: Metadata }): NerveBusError {
  return new NerveBusError(s.code, s.details, { metadata: s.metadata });
}

/**
 * Status codes the publisher retries and the subscriber reconnects on, by default. The
 * publishers also retry a CANCELLED they did not cause and any INTERNAL, as UNAVAILABLE (their
 * outcome is unknown).
 */
export const DEFAULT_RETRYABLE_CODES: readonly StatusCode[] = [status.UNAVAILABLE, status.RESOURCE_EXHAUSTED];
