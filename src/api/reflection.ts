import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { DESCRIPTOR_SET_BASE64 } from "./gen/descriptor-set.js";

/**
 * gRPC server reflection (v1 and v1alpha), so grpcurl and other tools list, describe and call
 * the services without the proto files: nervebus.v1's and grpc.health.v1.Health. It serves the
 * descriptor set that scripts/generate-descriptor-set.sh builds with source info rather than the
 * descriptors protoc-gen-es embeds, because those carry no comments and `grpcurl describe`
 * should show the API's documentation.
 */
export function addReflection(server: grpc.Server): void {
  const set = fromBinary(FileDescriptorSetSchema, Buffer.from(DESCRIPTOR_SET_BASE64, "base64"));
  const fileDescriptorProtos = set.file.map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f)));
  // @grpc/reflection reads `fileDescriptorProtos` off each entry of a package definition.
  const definition = { nervebus: { fileDescriptorProtos } } as unknown as ConstructorParameters<
    typeof ReflectionService
  >[0];
  new ReflectionService(definition).addToServer(server);
}
