import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";
import {
  protobufSerializer,
  type SerializerFactory,
  serviceDefinition,
} from "../../clients/ts/src/grpc-adapter.js";
import { invalidArgument } from "../core/index.js";
import { decodeOrMalformed, malformedReason } from "../wire/index.js";
import { toGrpcStatus } from "./status.js";

/*
 * The broker's side of the bridge between protobuf-es services and grpc-js: typed handler
 * tables, registration, and the hooks for the hand-written codecs (src/wire/fast-codec.ts). The
 * method table and typed clients are the TypeScript client's (clients/ts/src/grpc-adapter.ts),
 * compiled into the broker with the generated code beside it.
 */

type HandlerFor<M extends GenServiceMethods[string]> = M["methodKind"] extends "unary"
  ? grpc.handleUnaryCall<MessageShape<M["input"]>, MessageShape<M["output"]>>
  : M["methodKind"] extends "server_streaming"
    ? grpc.handleServerStreamingCall<MessageShape<M["input"]>, MessageShape<M["output"]>>
    : M["methodKind"] extends "client_streaming"
      ? grpc.handleClientStreamingCall<MessageShape<M["input"]>, MessageShape<M["output"]>>
      : grpc.handleBidiStreamingCall<MessageShape<M["input"]>, MessageShape<M["output"]>>;

/** One handler per method of the service; the compiler checks none is missing. */
export type ServiceHandlers<S extends GenServiceMethods> = { [K in keyof S]: HandlerFor<S[K]> };

const ENCODED = Symbol("nervebus.preEncoded");

/**
 * A message of this schema whose wire bytes were produced already (src/wire/fast-codec.ts): the
 * serializer sends those bytes as they are.
 */
export function preEncoded<D extends DescMessage>(schema: D, bytes: Buffer): MessageShape<D> {
  return Object.assign(create(schema), { [ENCODED]: bytes }) as MessageShape<D>;
}

/**
 * A message whose wire bytes came from elsewhere (another broker's answer): sent as they are,
 * never decoded here.
 */
export function passThrough(bytes: Buffer): never {
  return { [ENCODED]: bytes } as never;
}

/** Wire bytes of requests, kept by the decoders when calls may be forwarded (see keepRaw). */
const rawRequests = new WeakMap<object, Buffer>();

/** The bytes a request was decoded from, when addService kept them. */
export function rawRequest(msg: object): Buffer | undefined {
  return rawRequests.get(msg);
}

/** protobuf-es, unless the message carries bytes from preEncoded. */
const serializer: SerializerFactory = (schema) => {
  const encode = protobufSerializer(schema);
  return (msg) => (msg as { [ENCODED]?: Buffer })[ENCODED] ?? encode(msg);
};

/** Hand-written request decoders that replace protobuf-es for some methods (hot paths). */
export type RequestDecoders<S extends GenServiceMethods> = {
  [K in keyof S]?: (buf: Buffer) => MessageShape<S[K]["input"]>;
};

/**
 * Registers a service (keeping each request's wire bytes when `keepRaw`, for forwarding).
 * Refuses (throws) when a method of the descriptor has no handler, so a
 * proto change cannot leave an RPC silently answering UNIMPLEMENTED.
 */
export function addService<S extends GenServiceMethods>(
  server: grpc.Server,
  service: GenService<S>,
  handlers: ServiceHandlers<S>,
  decoders: RequestDecoders<S> = {},
  keepRaw = false,
): void {
  const impl: grpc.UntypedServiceImplementation = {};
  const requestDecoders: Record<string, (buf: Buffer) => unknown> = {};
  for (const m of service.methods) {
    const handler = (handlers as Record<string, grpc.UntypedHandleCall | undefined>)[m.localName];
    if (typeof handler !== "function") {
      throw new Error(`no handler for ${service.typeName}.${m.name}; refusing to start`);
    }
    const custom = (decoders as Record<string, ((buf: Buffer) => unknown) | undefined>)[m.localName];
    const decode = custom ?? ((buf: Buffer) => decodeOrMalformed(m.input, buf));
    // A forwarded call goes on as the bytes it came in: no encoding again.
    requestDecoders[m.localName] = keepRaw
      ? (buf) => {
          const msg = decode(buf) as object;
          rawRequests.set(msg, buf);
          return msg;
        }
      : decode;
    // Unary requests that are not protobuf get INVALID_ARGUMENT with the reason here; the hot
    // handlers (SendPack, Receive) check their own.
    impl[m.localName] =
      m.methodKind === "unary" && custom === undefined
        ? refuseMalformed(m.input.typeName, handler as grpc.handleUnaryCall<object, unknown>)
        : handler;
  }
  server.addService(serviceDefinition(service, { serializer, requestDecoders }), impl);
}

function refuseMalformed(
  typeName: string,
  handler: grpc.handleUnaryCall<object, unknown>,
): grpc.handleUnaryCall<object, unknown> {
  const name = typeName.slice(typeName.lastIndexOf(".") + 1);
  return (call, callback) => {
    const bad = malformedReason(call.request);
    if (bad === undefined) return handler(call, callback);
    callback(toGrpcStatus(invalidArgument("request", `is not a valid ${name} (${bad})`)));
  };
}

/** Promise form of a unary call (the CLI's and the tests'): rejects with the grpc-js error. */
export function unary<I, O>(
  call: (
    req: I,
    md: grpc.Metadata,
    opts: Partial<grpc.CallOptions>,
    cb: grpc.requestCallback<O>,
  ) => grpc.ClientUnaryCall,
  request: I,
  options: Partial<grpc.CallOptions> = {},
  metadata: grpc.Metadata = new grpc.Metadata(),
): Promise<O> {
  return new Promise((resolve, reject) => {
    call(request, metadata, options, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}
