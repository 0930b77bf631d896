import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { healthClient, healthStatus, startBroker } from "../support/broker.js";

const require = createRequire(import.meta.url);
const run = promisify(execFile);

test("gRPC health reports SERVING, then NOT_SERVING while draining", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-health-"));
  const bus = await startBroker(`sqlite:${join(dir, "nb.db")}`);
  const health = healthClient(bus.address);
  try {
    for (const service of [
      "",
      "nervebus.v1.PublisherService",
      "nervebus.v1.SubscriberService",
      "nervebus.v1.AdminService",
    ]) {
      assert.equal(await healthStatus(health, service), "SERVING", `health of ${JSON.stringify(service)}`);
    }
    const seen: string[] = [];
    const watch = health.watch({ service: "" });
    watch.on("data", (r: { status: string }) => seen.push(r.status));
    watch.on("error", () => {});
    while (seen.length === 0) await new Promise((r) => setTimeout(r, 20));
    await bus.stop();
    assert.deepEqual(seen.slice(0, 2), ["SERVING", "NOT_SERVING"], "a watcher sees the broker stop serving");
  } finally {
    health.close();
    await bus.stop();
  }
});

/** A gRPC server reflection (v1) client: one request per stream, its first response. */
function reflectionClient(address: string) {
  const protoFile = require.resolve("@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto");
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(protoFile, { keepCase: true })) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure());
  const ask = (req: Record<string, unknown>) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const call = (
        client as unknown as {
          ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, Record<string, unknown>>;
        }
      ).ServerReflectionInfo();
      call.on("data", (r) => {
        resolve(r);
        call.end();
      });
      call.on("error", reject);
      call.write(req);
    });
  return {
    async services(): Promise<string[]> {
      const r = (await ask({ list_services: "*" })) as {
        list_services_response: { service: { name: string }[] };
      };
      return r.list_services_response.service.map((s) => s.name);
    },
    /** The file declaring `symbol`, then the files it imports, decoded. */
    async fileContaining(symbol: string): Promise<FileDescriptorProto[]> {
      const r = (await ask({ file_containing_symbol: symbol })) as {
        file_descriptor_response?: { file_descriptor_proto: Buffer[] };
      };
      assert.ok(r.file_descriptor_response, `reflection knows ${symbol}: ${JSON.stringify(r)}`);
      return r.file_descriptor_response.file_descriptor_proto.map((b) =>
        fromBinary(FileDescriptorProtoSchema, b),
      );
    },
    close: () => client.close(),
  };
}

test("server reflection lists the services and describes them, so grpcurl needs no proto files", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-reflection-"));
  const bus = await startBroker(`sqlite:${join(dir, "nb.db")}`);
  const reflection = reflectionClient(bus.address);
  try {
    const names = await reflection.services();
    for (const s of [
      "nervebus.v1.PublisherService",
      "nervebus.v1.SubscriberService",
      "nervebus.v1.AdminService",
      "grpc.health.v1.Health",
    ]) {
      assert.ok(names.includes(s), `reflection lists ${s}: ${names.join(", ")}`);
    }
    const files = await reflection.fileContaining("nervebus.v1.PublisherService");
    assert.equal(files[0]?.name, "nervebus/v1/publisher.proto");
    assert.ok(files[0].service.some((s) => s.method.some((m) => m.name === "SendPack")));
    assert.ok(
      files.some((f) => f.name === "nervebus/v1/message.proto"),
      "its imports come along",
    );
    const health = await reflection.fileContaining("grpc.health.v1.Health");
    assert.equal(health[0]?.name, "grpc/health/v1/health.proto");
    assert.ok(health[0].service[0]?.method.some((m) => m.name === "Check"));
  } finally {
    reflection.close();
    await bus.stop();
  }
});

test("server reflection serves the proto comments, so grpcurl describe shows them", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-reflection-"));
  const bus = await startBroker(`sqlite:${join(dir, "nb.db")}`);
  const reflection = reflectionClient(bus.address);
  try {
    // The comment above `message SendPackRequest` in proto/nervebus/v1/publisher.proto.
    const proto = readFileSync(
      new URL("../../../proto/nervebus/v1/publisher.proto", import.meta.url),
      "utf8",
    );
    const expected = /\n\/\/ (.*)\nmessage SendPackRequest \{/.exec(proto)?.[1];
    assert.ok(expected, "publisher.proto has a one-line comment above SendPackRequest");
    const [file] = await reflection.fileContaining("nervebus.v1.SendPackRequest");
    assert.ok(file);
    const index = file.messageType.findIndex((m) => m.name === "SendPackRequest");
    // Source info path of a top-level message: [FileDescriptorProto.message_type = 4, index].
    const location = file.sourceCodeInfo?.location.find(
      (l) => l.path.length === 2 && l.path[0] === 4 && l.path[1] === index,
    );
    assert.equal(location?.leadingComments.trim(), expected);
  } finally {
    reflection.close();
    await bus.stop();
  }
});

// grpcurl itself (clients/go/scripts/setup.sh installs it into .tools/bin): the two commands the
// README promises. Outside CI a machine without it skips this one test; in CI it must run.
test("grpcurl checks health and describes with comments through reflection", async (t) => {
  const local = fileURLToPath(new URL("../../../.tools/bin/grpcurl", import.meta.url));
  const grpcurl = existsSync(local) ? local : whichSync("grpcurl");
  if (!grpcurl) {
    if (process.env.CI) assert.fail("grpcurl is missing: clients/go/scripts/setup.sh installs it");
    return t.skip("grpcurl is not installed (clients/go/scripts/setup.sh installs it)");
  }
  const dir = mkdtempSync(join(tmpdir(), "nb-reflection-"));
  const bus = await startBroker(`sqlite:${join(dir, "nb.db")}`);
  try {
    const check = await run(grpcurl, ["-plaintext", bus.address, "grpc.health.v1.Health/Check"]);
    assert.match(check.stdout, /"status": "SERVING"/);
    const describe = await run(grpcurl, [
      "-plaintext",
      bus.address,
      "describe",
      "nervebus.v1.SendPackRequest",
    ]);
    assert.match(describe.stdout, /SendPackRequest is one pack: the unit of the write path\./);
  } finally {
    await bus.stop();
  }
});

/** The path of `command` on PATH, or undefined. */
function whichSync(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const path = join(dir, command);
    if (dir && existsSync(path)) return path;
  }
  return undefined;
}
