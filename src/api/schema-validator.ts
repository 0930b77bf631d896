import { createFileRegistry, type DescFile, type DescMessage, fromBinary } from "@bufbuild/protobuf";
import {
  FileDescriptorSetSchema,
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
} from "@bufbuild/protobuf/wkt";
import { invalidArgument, type NewMessage, type SchemaValidator, type TopicSchema } from "../core/index.js";

/** Well-known files a descriptor set may import without including them (protoc leaves them out without --include_imports). */
const WELL_KNOWN: ReadonlyMap<string, DescFile> = new Map(
  [
    file_google_protobuf_any,
    file_google_protobuf_duration,
    file_google_protobuf_empty,
    file_google_protobuf_field_mask,
    file_google_protobuf_struct,
    file_google_protobuf_timestamp,
    file_google_protobuf_wrappers,
  ].map((f) => [f.proto.name, f]),
);

const problem = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The message type a schema names, from its descriptor set; INVALID_ARGUMENT naming the field when unusable. */
function compile(schema: TopicSchema): DescMessage {
  let set: ReturnType<typeof fromBinary<typeof FileDescriptorSetSchema>>;
  try {
    set = fromBinary(FileDescriptorSetSchema, schema.descriptorSet);
  } catch (err) {
    throw invalidArgument("schema.descriptor_set", `is not a serialized FileDescriptorSet: ${problem(err)}`);
  }
  const present = new Set(set.file.map((f) => f.name));
  for (const f of [...set.file]) {
    for (const dep of f.dependency) {
      const wkt = WELL_KNOWN.get(dep);
      if (!present.has(dep) && wkt !== undefined) {
        set.file.unshift(wkt.proto);
        present.add(dep);
      }
    }
  }
  let desc: DescMessage | undefined;
  try {
    desc = createFileRegistry(set).getMessage(schema.messageType);
  } catch (err) {
    // A file importing one the set lacks, or an invalid descriptor.
    throw invalidArgument(
      "schema.descriptor_set",
      `${problem(err)} (build it with its imports: buf build, or protoc --include_imports)`,
    );
  }
  if (desc === undefined)
    throw invalidArgument(
      "schema.message_type",
      `${JSON.stringify(schema.messageType)} is not a message type of the descriptor set (its files: ${set.file.map((f) => f.name).join(", ")})`,
    );
  return desc;
}

/**
 * Typed topics' payload check with protobuf-es: a payload must parse as the topic's message
 * type (unknown fields are kept, so producers built with a newer version of the type still
 * publish). The compiled type is cached per schema object (the topic keeps one until it is
 * replaced), so a publish costs one parse per message.
 */
export class ProtobufSchemaValidator implements SchemaValidator {
  readonly #compiled = new WeakMap<TopicSchema, DescMessage>();

  prepare(schema: TopicSchema): void {
    this.#type(schema);
  }

  check(schema: TopicSchema, messages: readonly NewMessage[]): void {
    const desc = this.#type(schema);
    for (let i = 0; i < messages.length; i++) {
      try {
        fromBinary(desc, messages[i]!.data);
      } catch (err) {
        throw invalidArgument(
          `messages[${i}].data`,
          `does not parse as ${schema.messageType}: ${problem(err)}`,
        );
      }
    }
  }

  #type(schema: TopicSchema): DescMessage {
    let desc = this.#compiled.get(schema);
    if (desc === undefined) {
      desc = compile(schema);
      this.#compiled.set(schema, desc);
    }
    return desc;
  }
}
