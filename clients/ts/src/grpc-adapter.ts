import {
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";

/*
 * The bridge between protobuf-es service descriptors and grpc-js: the method table of a
 * service (paths, streaming flags, protobuf-es (de)serialisation) and typed clients whose
 * methods are keyed by the ECMAScript local name (`sendPack`, `receive`).
 *
 * The broker compiles this file too (src/api/grpc-adapter.ts builds its server side on it), so
 * it imports nothing but @bufbuild/protobuf and @grpc/grpc-js: what the client adds on top
 * (errors, promise wrappers) lives in other files.
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
    : M["methodKind"] extends "server_streaming"
      ? (
          request: MessageShape<M["input"]>,
          metadata?: grpc.Metadata,
          options?: Partial<grpc.CallOptions>,
        ) => grpc.ClientReadableStream<MessageShape<M["output"]>>
      : never;

/** A grpc-js client with one typed method per RPC of a protobuf-es service. */
export type ServiceClient<S extends GenServiceMethods> = grpc.Client & { [K in keyof S]: ClientMethod<S[K]> };

/** Makes the function that turns messages of one schema into wire bytes. */
export type SerializerFactory = <D extends DescMessage>(schema: D) => (msg: MessageShape<D>) => Buffer;

/** Encodes messages of `schema` with protobuf-es. */
export const protobufSerializer: SerializerFactory = (schema) => {
  return (msg) => {
    const bytes = toBinary(schema, msg);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
};

function protobufDeserializer<D extends DescMessage>(schema: D): (buf: Buffer) => MessageShape<D> {
  return (buf) => fromBinary(schema, buf);
}

/** Where a service's (de)serialisation departs from plain protobuf-es (the broker's hot paths). */
export interface ServiceCodecs {
  /** Makes the serializer of every request and response schema; default protobufSerializer. */
  readonly serializer?: SerializerFactory;
  /** Request decoders by method local name, used instead of protobuf-es for those methods. */
  readonly requestDecoders?: Readonly<Record<string, ((buf: Buffer) => unknown) | undefined>>;
  /** Request encoders by method local name, used instead of `serializer` for those methods. */
  readonly requestSerializers?: Readonly<Record<string, ((msg: never) => Buffer) | undefined>>;
  /** Response decoders by method local name, used instead of protobuf-es for those methods. */
  readonly responseDecoders?: Readonly<Record<string, ((buf: Buffer) => unknown) | undefined>>;
}

/** The grpc-js method table of a protobuf-es service, keyed by method local name. */
export function serviceDefinition(service: DescService, codecs: ServiceCodecs = {}): grpc.ServiceDefinition {
  const serializer = codecs.serializer ?? protobufSerializer;
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) {
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: codecs.requestSerializers?.[m.localName] ?? serializer(m.input),
      requestDeserialize: codecs.requestDecoders?.[m.localName] ?? protobufDeserializer(m.input),
      responseSerialize: serializer(m.output),
      responseDeserialize: codecs.responseDecoders?.[m.localName] ?? protobufDeserializer(m.output),
      originalName: m.name,
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return def;
}

/**
 * The HTTP/2 flow-control window a channel grants its peer, per stream and per connection:
 * how much a broker may send on a Receive stream before the client's event loop has answered
 * with a WINDOW_UPDATE. grpc-go and gRPC C-core grow their windows to the bandwidth-delay
 * product by themselves; grpc-js keeps HTTP/2's 64 KiB, at which a subscriber draining a backlog
 * made the broker wait after every 64 KiB, broker and client taking turns instead of working
 * at once (a loopback drain of 1M 100 B messages: ~490k msg/s at 64 KiB, ~650k at 1 MiB,
 * ~770k at 4 MiB; BENCHMARKS.md). What a subscriber holds is bounded by its own window of
 * unacked messages and bytes, not by this.
 */
export const FLOW_CONTROL_WINDOW_BYTES = 4 << 20;

/** The channel option that sets FLOW_CONTROL_WINDOW_BYTES (grpc-js's own name for it). */
export const FLOW_CONTROL_OPTIONS: grpc.ChannelOptions = {
  "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW_BYTES,
};

/**
 * Creates a typed client for a protobuf-es service. Pass `channelOverride` in `options` to
 * share one connection between services (the credentials are then the channel's own). A method
 * given a decoder in `codecs` yields what that decoder makes, not the typed message.
 */
export function createClient<S extends GenServiceMethods>(
  service: GenService<S>,
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  options: grpc.ClientOptions = {},
  codecs: ServiceCodecs = {},
): ServiceClient<S> {
  const Ctor = grpc.makeGenericClientConstructor(serviceDefinition(service, codecs), service.name);
  return new Ctor(address, credentials, options) as unknown as ServiceClient<S>;
}
