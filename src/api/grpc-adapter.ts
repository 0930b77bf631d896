import {
  create,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";

/**
 * A small bridge between protobuf-es service descriptors and grpc-js: service definitions for
 * the server and typed clients, with protobuf-es doing the (de)serialisation. Methods are keyed
 * by their ECMAScript local name (`sendPack`, `receive`).
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
 * A message of this schema whose wire bytes were produced already (src/api/fast-codec.ts): the
 * serializer sends those bytes as they are.
 */
export function preEncoded<D extends DescMessage>(schema: D, bytes: Buffer): MessageShape<D> {
  return Object.assign(create(schema), { [ENCODED]: bytes }) as MessageShape<D>;
}

function serializer<D extends DescMessage>(schema: D): (msg: MessageShape<D>) => Buffer {
  return (msg) => {
    const pre = (msg as { [ENCODED]?: Buffer })[ENCODED];
    if (pre !== undefined) return pre;
    const bytes = toBinary(schema, msg);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer<D extends DescMessage>(schema: D): (buf: Buffer) => MessageShape<D> {
  return (buf) => fromBinary(schema, buf);
}

/** Hand-written request decoders that replace protobuf-es for some methods (hot paths). */
export type RequestDecoders<S extends GenServiceMethods> = {
  [K in keyof S]?: (buf: Buffer) => MessageShape<S[K]["input"]>;
};

/** The grpc-js service definition of a protobuf-es service. */
export function serviceDefinition(
  service: DescService,
  decoders: Record<string, ((buf: Buffer) => unknown) | undefined> = {},
): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) {
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: serializer(m.input),
      requestDeserialize: decoders[m.localName] ?? deserializer(m.input),
      responseSerialize: serializer(m.output),
      responseDeserialize: deserializer(m.output),
      originalName: m.name,
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return def;
}

/**
 * Registers a service. Refuses (throws) when a method of the descriptor has no handler, so a
 * proto change cannot leave an RPC silently answering UNIMPLEMENTED.
 */
export function addService<S extends GenServiceMethods>(
  server: grpc.Server,
  service: GenService<S>,
  handlers: ServiceHandlers<S>,
  decoders: RequestDecoders<S> = {},
): void {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const m of service.methods) {
    const handler = (handlers as Record<string, grpc.UntypedHandleCall | undefined>)[m.localName];
    if (typeof handler !== "function") {
      throw new Error(`no handler for ${service.typeName}.${m.name}; refusing to start`);
    }
    impl[m.localName] = handler;
  }
  server.addService(
    serviceDefinition(service, decoders as Record<string, ((buf: Buffer) => unknown) | undefined>),
    impl,
  );
}

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
    : M["methodKind"] extends "server_streaming"
      ? (
          request: MessageShape<M["input"]>,
          metadata?: grpc.Metadata,
          options?: Partial<grpc.CallOptions>,
        ) => grpc.ClientReadableStream<MessageShape<M["output"]>>
      : never;

/** A grpc-js client with one typed method per RPC. */
export type ServiceClient<S extends GenServiceMethods> = grpc.Client & { [K in keyof S]: ClientMethod<S[K]> };

/** Creates a typed client for a protobuf-es service. */
export function createClient<S extends GenServiceMethods>(
  service: GenService<S>,
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  options: grpc.ChannelOptions = {},
): ServiceClient<S> {
  const Ctor = grpc.makeGenericClientConstructor(serviceDefinition(service), service.name);
  return new Ctor(address, credentials, options) as unknown as ServiceClient<S>;
}

/** Promise form of a unary call. */
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
