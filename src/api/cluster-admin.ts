import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  type AdminService,
  ClusterBrokerSchema,
  OwnedTopicSchema,
} from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { EVERY_NAME } from "../auth/index.js";
import { type Cluster, NerveBusError } from "../core/index.js";
import { type CallGuard, guardedUnary } from "./call-guard.js";
import type { ServiceHandlers } from "./grpc-adapter.js";

type ClusterMethods = Pick<
  ServiceHandlers<(typeof AdminService)["method"]>,
  "locateTopic" | "drainBroker" | "getCluster"
>;

const noCluster = () =>
  new NerveBusError("failed_precondition", "this broker runs alone (started without --cluster)");

/**
 * The AdminService calls about the cluster (several brokers on one database): where a topic is
 * served, draining the called broker, and the brokers with the topics each owns. Without a
 * cluster LocateTopic names the broker called (empty address) and the others refuse.
 */
export function clusterAdminHandlers(guard: CallGuard, cluster: Cluster | undefined): ClusterMethods {
  return {
    locateTopic: guardedUnary(
      guard,
      "LocateTopic",
      () => [],
      async (req, caller) => {
        // Whoever may use the topic may know where it is served.
        const may = (["publish", "subscribe", "admin"] as const).some((action) =>
          guard.may(caller, { action, topic: req.topic }),
        );
        if (!may)
          throw new NerveBusError("permission_denied", `no right on topic ${JSON.stringify(req.topic)}`);
        return { $typeName: "nervebus.v1.LocateTopicResponse", address: cluster?.route(req.topic) ?? "" };
      },
    ),
    drainBroker: guardedUnary(
      guard,
      "DrainBroker",
      () => [{ action: "admin", topic: EVERY_NAME }],
      async () => {
        if (cluster === undefined) throw noCluster();
        return { $typeName: "nervebus.v1.DrainBrokerResponse", topics: await cluster.drain() };
      },
    ),
    getCluster: guardedUnary(
      guard,
      "GetCluster",
      () => [{ action: "admin" }],
      async (_req, caller) => {
        if (cluster === undefined) throw noCluster();
        const view = cluster.view();
        return {
          $typeName: "nervebus.v1.GetClusterResponse",
          self: view.self,
          failovers: BigInt(view.failovers),
          handovers: BigInt(view.handovers),
          brokers: view.members.map((m) =>
            create(ClusterBrokerSchema, {
              id: m.id,
              address: m.address,
              live: m.live,
              draining: m.draining,
              heartbeatAge: durationFromMs(m.heartbeatAgeMs),
              topics: m.topics
                .filter((t) => guard.may(caller, { action: "admin", topic: t.name }))
                .map((t) =>
                  create(OwnedTopicSchema, {
                    name: t.name,
                    epoch: BigInt(t.epoch),
                    leaseAge: durationFromMs(t.leaseAgeMs),
                  }),
                ),
            }),
          ),
        };
      },
    ),
  };
}
