import { type DescFile, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { file_nervebus_v1_admin } from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { file_nervebus_v1_publisher } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { file_nervebus_v1_subscriber } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";

/** Every file and its imports, each once, dependencies first. */
function closure(files: DescFile[]): DescFile[] {
  const seen = new Set<string>();
  const out: DescFile[] = [];
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.add(f.name);
    for (const d of f.dependencies) visit(d);
    out.push(f);
  };
  for (const f of files) visit(f);
  return out;
}

/**
 * gRPC server reflection (v1 and v1alpha) from the descriptors protobuf-es already carries, so
 * grpcurl and other tools list and call the services without the proto files.
 */
export function addReflection(server: grpc.Server): void {
  const files = closure([file_nervebus_v1_publisher, file_nervebus_v1_subscriber, file_nervebus_v1_admin]);
  const fileDescriptorProtos = files.map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)));
  // @grpc/reflection reads `fileDescriptorProtos` off each entry of a package definition.
  const definition = { nervebus: { fileDescriptorProtos } } as unknown as ConstructorParameters<
    typeof ReflectionService
  >[0];
  new ReflectionService(definition).addToServer(server);
}
