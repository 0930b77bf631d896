import * as grpc from "@grpc/grpc-js";
import { AdminService } from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { PublisherService } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { SubscriberService } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { createClient, type ServiceClient } from "../api/index.js";
import { checkHostPort } from "../config/index.js";
import { NerveBusError } from "../core/index.js";

/** Connects to a broker, failing with one clear line when it cannot be reached in time. */
export async function connect(server: string): Promise<{
  publisher: ServiceClient<(typeof PublisherService)["method"]>;
  subscriber: ServiceClient<(typeof SubscriberService)["method"]>;
  admin: ServiceClient<(typeof AdminService)["method"]>;
  close(): void;
}> {
  checkHostPort("server", server);
  const options = { "grpc.max_receive_message_length": 64 << 20, "grpc.max_send_message_length": 64 << 20 };
  const publisher = createClient(PublisherService, server, grpc.credentials.createInsecure(), options);
  const subscriber = createClient(SubscriberService, server, grpc.credentials.createInsecure(), options);
  const admin = createClient(AdminService, server, grpc.credentials.createInsecure(), options);
  await new Promise<void>((resolve, reject) =>
    publisher.waitForReady(Date.now() + 5000, (err) =>
      err
        ? reject(
            new NerveBusError("unavailable", `--server ${server}: broker not reachable (${err.message})`),
          )
        : resolve(),
    ),
  );
  return {
    publisher,
    subscriber,
    admin,
    close() {
      publisher.close();
      subscriber.close();
      admin.close();
    },
  };
}

/** One line for a failed gRPC call: status name and details. */
export function describeGrpcError(err: unknown): string {
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e.code === "number") return `${grpc.status[e.code]}: ${e.details ?? e.message}`;
  return err instanceof Error ? err.message : String(err);
}
