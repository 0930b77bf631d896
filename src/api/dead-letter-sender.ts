import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { MessageSchema, Priority as WirePriority } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import {
  PublisherService,
  SendPackRequestSchema,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { createClient, type ServiceClient } from "../../clients/ts/src/grpc-adapter.js";
import type { Cluster, NewMessage, Priority } from "../core/index.js";
import { FORWARDED_HEADER } from "./forwarder.js";

/**
 * Header of a SendPack one broker of the cluster makes to another with dead letters for a
 * topic the receiver owns: the receiver accepts their dead-letter attributes (reserved
 * otherwise) when the header comes from a live broker of its cluster (see isDeadLetterPeer).
 */
export const DEAD_LETTER_HEADER = "nervebus-dead-letters";

/** How long one forward of dead letters may take; a failure is retried by the subscription. */
const SEND_TIMEOUT_MS = 30_000;

const WIRE_PRIORITY: Record<Priority, WirePriority> = {
  urgent: WirePriority.URGENT,
  normal: WirePriority.NORMAL,
  bulk: WirePriority.BULK,
};

type PublisherClient = ServiceClient<(typeof PublisherService)["method"]>;

/**
 * Sends dead letters whose dead-letter topic another broker of the cluster owns to that broker
 * (a SendPack marked as forwarded, so it is served there and not sent on). Plaintext, like
 * the forwarding of calls: brokers reach each other on a private network.
 */
export class DeadLetterSender {
  readonly #clients = new Map<string, PublisherClient>();

  constructor(private readonly cluster: Cluster) {}

  /** Resolves once the owner confirmed the letters durable. */
  send(ownerAddress: string, topic: string, messages: NewMessage[]): Promise<void> {
    const request = create(SendPackRequestSchema, {
      topic,
      messages: messages.map((m) =>
        create(MessageSchema, {
          data: m.data,
          attributes: m.attributes,
          orderingKey: m.orderingKey,
          messageId: m.messageId,
          priority: WIRE_PRIORITY[m.priority ?? "normal"],
        }),
      ),
    });
    const metadata = new grpc.Metadata();
    metadata.set(FORWARDED_HEADER, this.cluster.self);
    metadata.set(DEAD_LETTER_HEADER, "1");
    const client = this.#client(ownerAddress);
    return new Promise((resolve, reject) => {
      client.sendPack(request, metadata, { deadline: Date.now() + SEND_TIMEOUT_MS }, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  /** Closes the channels to other brokers. */
  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }

  #client(address: string): PublisherClient {
    let client = this.#clients.get(address);
    if (client === undefined) {
      client = createClient(PublisherService, address);
      this.#clients.set(address, client);
    }
    return client;
  }
}

/**
 * Whether a SendPack carries dead letters forwarded by a live broker of `cluster` (see
 * DEAD_LETTER_HEADER); anything else publishing the reserved attributes is refused as usual.
 */
export function isDeadLetterPeer(cluster: Cluster | undefined, metadata: grpc.Metadata): boolean {
  if (cluster === undefined || metadata.get(DEAD_LETTER_HEADER).length === 0) return false;
  const from = metadata.get(FORWARDED_HEADER)[0];
  return cluster.view().members.some((m) => m.live && m.id === from && m.id !== cluster.self);
}
