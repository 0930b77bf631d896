import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type PayloadSchema, PayloadSchemaSchema } from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import type { TopicSchema } from "../core/index.js";

/** A topic's schema as the wire has it; an empty PayloadSchema for an untyped topic. */
export function schemaToWire(schema: TopicSchema | null): PayloadSchema {
  if (schema === null) return create(PayloadSchemaSchema, {});
  return create(PayloadSchemaSchema, {
    messageType: schema.messageType,
    descriptorSet: schema.descriptorSet,
    updateTime: timestampFromMs(schema.updatedAt),
  });
}
