import * as grpc from "@grpc/grpc-js";
import { NerveBusError, StatusCode, toNerveBusError } from "./errors.js";

/** Per-call options of the promise wrappers. */
export interface CallOptions {
  /** Cancels the call; the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Deadline of the call in ms from now. */
  readonly timeoutMs?: number;
}

type UnaryFn<I, O> = (
  req: I,
  md: grpc.Metadata,
  opts: Partial<grpc.CallOptions>,
  cb: grpc.requestCallback<O>,
) => grpc.ClientUnaryCall;

/**
 * Promise form of a unary call: rejects with a NerveBusError carrying the status, or with the
 * signal's reason when aborted (the call is cancelled).
 */
export function unaryCall<I, O>(
  client: grpc.Client,
  fn: UnaryFn<I, O>,
  request: I,
  options: CallOptions = {},
): Promise<O> {
  const { signal, timeoutMs } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<O>((resolve, reject) => {
    let settled = false;
    const callOptions: Partial<grpc.CallOptions> = {};
    if (timeoutMs !== undefined) callOptions.deadline = Date.now() + timeoutMs;
    const onAbort = () => {
      if (settled) return;
      settled = true;
      call.cancel();
      reject(signal!.reason);
    };
    const call = fn.call(client, request, new grpc.Metadata(), callOptions, (err, res) => {
      signal?.removeEventListener("abort", onAbort);
      if (settled) return;
      settled = true;
      if (err) reject(toNerveBusError(err));
      else if (res === undefined) reject(new NerveBusError(StatusCode.INTERNAL, "empty response"));
      else resolve(res);
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
