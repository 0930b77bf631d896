import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { healthClient, healthStatus, startBroker } from "../support/broker.js";

const require = createRequire(import.meta.url);

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

test("server reflection lists the services and describes them, so grpcurl needs no proto files", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-reflection-"));
  const bus = await startBroker(`sqlite:${join(dir, "nb.db")}`);
  const protoFile = require.resolve("@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto");
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(protoFile, { keepCase: true })) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(bus.address, grpc.credentials.createInsecure());
  try {
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
    const list = (await ask({ list_services: "*" })) as {
      list_services_response: { service: { name: string }[] };
    };
    const names = list.list_services_response.service.map((s) => s.name);
    for (const s of [
      "nervebus.v1.PublisherService",
      "nervebus.v1.SubscriberService",
      "nervebus.v1.AdminService",
    ]) {
      assert.ok(names.includes(s), `reflection lists ${s}: ${names.join(", ")}`);
    }
    const file = (await ask({ file_containing_symbol: "nervebus.v1.PublisherService" })) as {
      file_descriptor_response: { file_descriptor_proto: Buffer[] };
    };
    const blobs = file.file_descriptor_response.file_descriptor_proto.map((b) =>
      Buffer.from(b).toString("latin1"),
    );
    assert.ok(blobs.some((b) => b.includes("nervebus/v1/publisher.proto") && b.includes("SendPack")));
    assert.ok(
      blobs.some((b) => b.includes("nervebus/v1/message.proto")),
      "its imports come along",
    );
  } finally {
    client.close();
    await bus.stop();
  }
});
