import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { MessageSchema, Priority as WirePriority } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import {
  PublisherService,
  SendPackRequestSchema,
  SendPackResponseSchema,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import {
  type Cluster,
  type NewMessage,
  type Priority,
  type PublishLimits,
  packsWithin,
} from "../core/index.js";
import { DEAD_LETTER_HEADER, type PeerAuth } from "./peer-auth.js";
import type { PeerChannels } from "./peer-channels.js";

/** How long one forward of dead letters may take; a failure is retried by the subscription. */
const SEND_TIMEOUT_MS = 30_000;

const SEND_PACK = `/${PublisherService.typeName}/${PublisherService.method.sendPack.name}`;

const WIRE_PRIORITY: Record<Priority, WirePriority> = {
  urgent: WirePriority.URGENT,
  normal: WirePriority.NORMAL,
  bulk: WirePriority.BULK,
};

/**
 * Sends dead letters whose dead-letter topic another broker of the cluster owns to that broker:
 * a SendPack signed as this broker's (PeerAuth) and marked as dead letters, so the owner
 * accepts their reserved attributes and serves it without a client's principal (the
 * subscription's dead-letter topic was authorized when it was set), over the cluster's
 * channels (TLS when the broker serves TLS). Letters are sent in packs within the owner's pack
 * limits, as it published them with its address (this broker's `limits` for an owner that
 * published none): the owner refuses a larger pack, and the subscription would retry it forever
 * (a terminate of more than its --max-pack-messages at once). It refuses no letter for its size.
 */
export class DeadLetterSender {
  constructor(
    private readonly peers: PeerAuth,
    private readonly channels: PeerChannels,
    private readonly cluster: Cluster,
    private readonly limits: PublishLimits,
  ) {}

  /**
   * Resolves once the owner confirmed the letters durable. A failure part way leaves the packs
   * sent before it stored: a retry sends them again, and their message ids (deadLetterId, the
   * outbox's row ids) let the owner's dedup window store each once.
   */
  async send(ownerAddress: string, topic: string, messages: NewMessage[]): Promise<void> {
    for (const pack of packsWithin(messages, this.limitsAt(ownerAddress)))
      await this.#sendPack(ownerAddress, topic, pack);
  }

  /** The limits of the broker at `address` as it published them; this broker's if it published none. */
  limitsAt(address: string): PublishLimits {
    const limits = this.cluster.limitsAt(address);
    return limits === undefined ? this.limits : { ...limits, whose: `at broker ${address}` };
  }

  #sendPack(ownerAddress: string, topic: string, messages: NewMessage[]): Promise<void> {
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
    this.peers.sign(metadata);
    metadata.set(DEAD_LETTER_HEADER, "1");
    return new Promise((resolve, reject) => {
      this.channels.client(ownerAddress).makeUnaryRequest(
        SEND_PACK,
        () => Buffer.from(toBinary(SendPackRequestSchema, request)),
        (b: Buffer) => fromBinary(SendPackResponseSchema, b),
        request,
        metadata,
        { deadline: Date.now() + SEND_TIMEOUT_MS },
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }
}
