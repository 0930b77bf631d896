import {
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";
import { NerveBusError, StatusCode, toNerveBusError } from "./errors.js";

/*
 * The bridge between protobuf-es service descriptors and grpc-js on the client side: typed
 * clients whose methods are keyed by the ECMAScript local name (`sendPack`, `receive`), with
 * protobuf-es doing the (de)serialisation.
 */

type ClientMethod<M extends GenServiceMethods[string]> = M["methodKind"] extends "unary"
  ? (
      request: MessageShape<M["input"]>,
      metadata: grpc.Metadata,
      options: Partial<grpc.CallOptions>,
      callback: grpc.requestCallback<MessageShape<M["output"]>>,
    ) => grpc.ClientUnaryCall
  : M["methodKind"] extends "bidi_streaming"
    ? (
        metadata?: grpc.Metadata,
        options?: Partial<grpc.CallOptions>,
      ) => grpc.ClientDuplexStream<MessageShape<M["input"]>, MessageShape<M["output"]>>
    : never;

/** A grpc-js client with one typed method per RPC of a protobuf-es service. */
export type ServiceClient<S extends GenServiceMethods> = grpc.Client & { [K in keyof S]: ClientMethod<S[K]> };

function serializer<D extends DescMessage>(schema: D): (msg: MessageShape<D>) => Buffer {
  return (msg) => {
    const bytes = toBinary(schema, msg);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer<D extends DescMessage>(schema: D): (buf: Buffer) => MessageShape<D> {
  return (buf) => fromBinary(schema, buf);
}

/** The grpc-js method table of a protobuf-es service. */
function methodTable(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) {
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: serializer(m.input),
      requestDeserialize: deserializer(m.input),
      responseSerialize: serializer(m.output),
      responseDeserialize: deserializer(m.output),
      originalName: m.name,
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return def;
}

/** Creates a typed client for a service on an existing channel (so services share one connection). */
export function createServiceClient<S extends GenServiceMethods>(
  service: GenService<S>,
  address: string,
  channel: grpc.Channel,
  interceptors: grpc.Interceptor[] = [],
): ServiceClient<S> {
  const Ctor = grpc.makeGenericClientConstructor(methodTable(service), service.name);
  // The credentials argument is unused with channelOverride: the channel carries its own.
  return new Ctor(address, grpc.credentials.createInsecure(), {
    channelOverride: channel,
    interceptors,
  }) as unknown as ServiceClient<S>;
}

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
