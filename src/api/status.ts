import * as grpc from "@grpc/grpc-js";
import { asNerveBusError, type ErrorCode } from "../core/index.js";

/** Domain error codes to gRPC status codes: the one table at the edge. */
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
  unauthenticated: grpc.status.UNAUTHENTICATED,
  permission_denied: grpc.status.PERMISSION_DENIED,
};

/** A gRPC status object for anything thrown by the core or the stores. */
/** Trailer naming how long to wait before retrying a refused call (ms), as Kafka's throttle time. */
export const RETRY_AFTER_TRAILER = "nervebus-retry-after-ms";

export function toGrpcStatus(
  err: unknown,
): Partial<grpc.StatusObject> & { code: grpc.status; details: string } {
  const e = asNerveBusError(err);
  const metadata = new grpc.Metadata();
  if (e.retryAfterMs !== undefined) metadata.set(RETRY_AFTER_TRAILER, String(e.retryAfterMs));
  return { code: GRPC_STATUS[e.code], details: e.message, metadata };
}
