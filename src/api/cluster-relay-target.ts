import {
  type Broker,
  type Cluster,
  checkPack,
  type LoggedIds,
  type NewMessage,
  NotOwnerError,
  Outcomes,
  type PublishResult,
  RESERVED_ATTRIBUTE_PREFIX,
  type RelayTarget,
} from "../core/index.js";
import { packOf } from "../wire/index.js";
import type { DeadLetterSender } from "./dead-letter-sender.js";

/**
 * The outbox relay's target with --cluster: topics this broker serves (or that fall to it) are
 * published here; every other topic goes to its owner as a signed broker-to-broker SendPack
 * (the path dead letters take), whose message ids `outbox/<source>/<row>` the owner
 * deduplicates, so a pack sent again after a failure or a relay failover is stored once. The
 * relay's recovery reads only the logs of topics served here (their tails are this broker's to
 * know durable); for the others it relies on that dedup.
 */
export class ClusterRelayTarget implements RelayTarget {
  constructor(
    private readonly broker: Broker,
    private readonly cluster: Cluster,
    private readonly sender: DeadLetterSender,
  ) {}

  get closing(): boolean {
    return this.broker.closing || this.broker.fenced !== undefined;
  }

  async publish(topic: string, messages: readonly NewMessage[], deadline: number): Promise<PublishResult> {
    const owner = this.cluster.route(topic);
    if (owner === undefined) {
      try {
        return await this.broker.publish(topic, messages, deadline);
      } catch (err) {
        // The topic moved since the last heartbeat: send it where it is served now.
        if (!(err instanceof NotOwnerError)) throw err;
        return this.#send(err.ownerAddress, topic, messages);
      }
    }
    return this.#send(owner, topic, messages);
  }

  async nextSeq(topic: string): Promise<number | undefined> {
    return this.#servedHere(topic) ? this.broker.nextSeq(topic) : undefined;
  }

  async durableIds(topic: string, fromSeq: number): Promise<{ through: number; ids: readonly LoggedIds[] }> {
    if (!this.#servedHere(topic)) return { through: fromSeq - 1, ids: [] };
    return this.broker.durableIds(topic, fromSeq);
  }

  #servedHere(topic: string): boolean {
    return this.cluster.owns(topic);
  }

  /** No seqs come back (the relay keeps no scan-from seq for another broker's topic). */
  async #send(address: string, topic: string, messages: readonly NewMessage[]): Promise<PublishResult> {
    // The peer path carries dead letters: it takes reserved attributes and refuses no size. An
    // outbox row is the application's, checked here as a publish there checks it (by the
    // owner's limits; the sender splits the rows into packs within them).
    const pack = packOf(messages, RESERVED_ATTRIBUTE_PREFIX);
    const limits = this.sender.limitsAt(address);
    checkPack(pack, { ...limits, maxPackMessages: pack.count, maxPackBytes: Number.POSITIVE_INFINITY });
    await this.sender.send(address, topic, [...messages]);
    return { firstSeq: 0, lastSeq: 0, results: new Outcomes(0, undefined) };
  }
}
