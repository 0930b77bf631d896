import {
  create,
  type DescFile,
  type DescMessage,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { PublishMessage, PublishOptions, PublishResult } from "./publisher.js";
import type { ReceivedMessage } from "./received-message.js";
import type { MessageHandler } from "./subscriber.js";

/** A typed topic's protobuf message type (`messageType` empty when the topic is untyped). */
export interface TopicSchemaInfo {
  readonly messageType: string;
  /** The serialized google.protobuf.FileDescriptorSet that defines it. */
  readonly descriptorSet: Uint8Array;
  readonly updateTime: Date | undefined;
}

/**
 * The serialized FileDescriptorSet of a generated message's file and every file it imports, as
 * Admin.setTopicSchema sends it.
 */
export function descriptorSetOf(schema: DescMessage): Uint8Array {
  const files: DescFile[] = [];
  const seen = new Set<string>();
  const add = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    for (const dep of f.dependencies) add(dep);
    files.push(f);
  };
  add(schema.file);
  return toBinary(
    FileDescriptorSetSchema,
    create(FileDescriptorSetSchema, { file: files.map((f) => f.proto) }),
  );
}

/** Anything that publishes: a NerveBusClient or a Publisher. */
interface Publishes {
  publish(topic: string, message: PublishMessage, options?: PublishOptions): Promise<PublishResult>;
}

/**
 * Publishes values of one generated protobuf message type (protobuf-es) to a topic: a thin
 * wrapper that serializes them into the payload.
 */
export class TypedPublisher<Desc extends DescMessage> {
  constructor(
    private readonly publisher: Publishes,
    readonly topic: string,
    readonly schema: Desc,
  ) {}

  /** Serializes `value` and publishes it with the other fields of `message` (attributes, key …). */
  publish(
    value: MessageShape<Desc>,
    message: Omit<PublishMessage, "data"> = {},
    options?: PublishOptions,
  ): Promise<PublishResult> {
    return this.publisher.publish(this.topic, { ...message, data: toBinary(this.schema, value) }, options);
  }
}

/**
 * A subscriber handler that parses each payload as `schema` first. A payload that does not
 * parse is terminated (dead-lettered, or dropped without a dead-letter topic) and never reaches
 * `handler`: redelivering it cannot help.
 */
export function typedHandler<Desc extends DescMessage>(
  schema: Desc,
  handler: (value: MessageShape<Desc>, message: ReceivedMessage) => void | Promise<void>,
): MessageHandler {
  return (message) => {
    let value: MessageShape<Desc>;
    try {
      value = fromBinary(schema, message.data);
    } catch {
      message.terminate();
      return;
    }
    return handler(value, message);
  };
}
