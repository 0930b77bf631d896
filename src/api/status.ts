import * as grpc from "@grpc/grpc-js";
import { asNerveBusError, type ErrorCode, NotOwnerError } from "../core/index.js";

/** Domain error codes to gRPC status codes: the gRPC port's one table at the edge. */
const GRPC_STATUS: Record<ErrorCode, grpc.status> = {
  invalid_argument: grpc.status.INVALID_ARGUMENT,
  not_found: grpc.status.NOT_FOUND,
  already_exists: grpc.status.ALREADY_EXISTS,
  failed_precondition: grpc.status.FAILED_PRECONDITION,
  resource_exhausted: grpc.status.RESOURCE_EXHAUSTED,
  unavailable: grpc.status.UNAVAILABLE,
  deadline_exceeded: grpc.status.DEADLINE_EXCEEDED,
  cancelled: grpc.status.CANCELLED,
  internal: grpc.status.INTERNAL,
  data_loss: grpc.status.DATA_LOSS,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  permission_denied: grpc.status.PERMISSION_DENIED,
};

/** Trailer naming how long to wait before retrying a refused call (ms), as Kafka's throttle time. */
export const RETRY_AFTER_TRAILER = "nervebus-retry-after-ms";

/**
 * Trailer naming the gRPC address of the broker that owns the call's topic (several brokers,
 * `--cluster`), on an UNAVAILABLE that was not forwarded there: a client may connect to it.
 */
export const OWNER_TRAILER = "nervebus-owner";

/** A gRPC status object for anything thrown by the core or the stores. */
export function toGrpcStatus(
  err: unknown,
): Partial<grpc.StatusObject> & { code: grpc.status; details: string } {
  const e = asNerveBusError(err);
  const metadata = new grpc.Metadata();
  if (e.retryAfterMs !== undefined) metadata.set(RETRY_AFTER_TRAILER, String(e.retryAfterMs));
  if (e instanceof NotOwnerError && e.ownerAddress !== "") metadata.set(OWNER_TRAILER, e.ownerAddress);
  return { code: GRPC_STATUS[e.code], details: e.message, metadata };
}

/** Domain error codes to HTTP statuses: the HTTP port's one table at the edge. */
const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid_argument: 400,
  not_found: 404,
  already_exists: 409,
  failed_precondition: 412,
  resource_exhausted: 429,
  unavailable: 503,
  deadline_exceeded: 504,
  cancelled: 503,
  internal: 500,
  data_loss: 500,
  unauthenticated: 401,
  permission_denied: 403,
};

/** The HTTP status for a domain error code. */
export function toHttpStatus(code: ErrorCode): number {
  return HTTP_STATUS[code];
}
