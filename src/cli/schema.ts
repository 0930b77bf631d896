import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  GetTopicSchemaRequestSchema,
  SetTopicSchemaRequestSchema,
} from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { unary } from "../api/index.js";
import { NerveBusError } from "../core/index.js";
import { parseClientArgs, requiredFlag } from "./client-args.js";
import { connect, describeGrpcError } from "./connect.js";

const USAGE = `usage:
  nervebus schema set   --topic T --type PKG.MESSAGE --descriptor-set FILE   (FILE: buf build -o FILE, or protoc --include_imports --descriptor_set_out FILE)
  nervebus schema get   --topic T
  nervebus schema clear --topic T`;

/**
 * `nervebus schema set|get|clear`: a topic's protobuf message type (typed topics). `set` reads
 * a FileDescriptorSet file; the broker checks it defines the type.
 */
export async function schemaCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  const v = parseClientArgs(rest, {
    topic: { type: "string" },
    type: { type: "string" },
    "descriptor-set": { type: "string" },
  });
  if (verb !== "set" && verb !== "get" && verb !== "clear")
    throw new NerveBusError(
      "invalid_argument",
      `unknown schema command ${JSON.stringify(verb ?? "")}\n${USAGE}`,
    );
  const topic = requiredFlag(v.topic, "topic");
  let descriptorSet = new Uint8Array();
  if (verb === "set") {
    const file = requiredFlag(v["descriptor-set"], "descriptor-set");
    try {
      descriptorSet = readFileSync(file);
    } catch (err) {
      throw new NerveBusError(
        "invalid_argument",
        `--descriptor-set: cannot read ${file}: ${(err as Error).message}`,
      );
    }
  }
  const client = await connect(v);
  try {
    const schema =
      verb === "get"
        ? (
            await unary(
              client.admin.getTopicSchema.bind(client.admin),
              create(GetTopicSchemaRequestSchema, { topic }),
              { deadline: Date.now() + 30_000 },
            )
          ).schema
        : (
            await unary(
              client.admin.setTopicSchema.bind(client.admin),
              create(SetTopicSchemaRequestSchema, {
                topic,
                schema: { messageType: verb === "set" ? requiredFlag(v.type, "type") : "", descriptorSet },
              }),
              { deadline: Date.now() + 30_000 },
            )
          ).schema;
    if (!schema?.messageType) process.stdout.write(`${topic}: untyped\n`);
    else
      process.stdout.write(
        `${topic}: ${schema.messageType} (descriptor set of ${schema.descriptorSet.byteLength} bytes, set ${schema.updateTime ? new Date(timestampMs(schema.updateTime)).toISOString() : "?"})\n`,
      );
    return 0;
  } catch (err) {
    throw new NerveBusError("unavailable", `schema ${verb} ${topic}: ${describeGrpcError(err)}`);
  } finally {
    client.close();
  }
}
