import { NerveBusError } from "./errors.js";
import type { PublishLimits } from "./limits.js";

/** A topic this broker owns, as the cluster view shows it. */
export interface OwnedTopic {
  readonly name: string;
  /** The topic lease's fencing epoch. */
  readonly epoch: number;
  /** ms since the lease was taken or last renewed. */
  readonly leaseAgeMs: number;
}

/** One broker of the cluster, as the last heartbeat saw it. */
export interface ClusterMember {
  readonly id: string;
  /** The gRPC address other brokers forward to (`--advertise-address`). */
  readonly address: string;
  /** ms since its last heartbeat. */
  readonly heartbeatAgeMs: number;
  readonly live: boolean;
  /** Handing its topics away (drain-broker): takes no new ones. */
  readonly draining: boolean;
  readonly topics: readonly OwnedTopic[];
}

/** What the status page, metrics and stats show about the cluster. */
export interface ClusterView {
  /** This broker's id. */
  readonly self: string;
  readonly members: readonly ClusterMember[];
  /** Topics this broker took from another broker whose lease had lapsed (not handed over). */
  readonly failovers: number;
  /** Topics this broker took over gracefully (handed over by drain or rebalancing). */
  readonly handovers: number;
}

/** What the cluster asks of the broker (set once by the process that wires them). */
export interface ClusterHooks {
  /** A topic whose owner is gone falls to this broker: load it now (recovers its state). */
  adopt(topic: string): void;
  /** Another broker took the topic: stop serving it at once, failing what is in flight. */
  lose(topic: string, err: NerveBusError): void;
  /** Hand the topic over: finish in-flight work, persist its state, then release its lease. */
  release(topic: string): Promise<void>;
}

/**
 * Several brokers on one database, each topic owned by one of them (a lease per topic). The
 * store implements it; the API layer asks it where a topic's calls go, the broker is driven by
 * its hooks.
 */
export interface Cluster {
  /** This broker's id (host/pid/random). */
  readonly self: string;
  /**
   * This broker's peer secret: random per process, registered with its membership in the
   * database (which every broker of the cluster shares and trusts) and nowhere else; it
   * presents it on every call it makes to another broker.
   */
  readonly secret: string;
  /**
   * Whether `secret` is the one the live broker `id` registered (compared in constant time):
   * the call comes from a broker of this cluster, not from a client that names one.
   */
  verifyPeer(id: string, secret: string): boolean;
  /**
   * Whether `id` is a live broker that registered a secret: a call naming it without that
   * secret is forged, not a call of a broker this one has not seen yet (or of an older version).
   */
  knowsPeer(id: string): boolean;
  /**
   * Publishes the address other brokers forward to and the pack limits this broker takes
   * (other brokers check packs for its topics against them, and split what they send it by
   * them); before it, this broker takes no topic.
   */
  advertise(address: string, limits?: PublishLimits): Promise<void>;
  /**
   * The pack limits the live broker at `address` published with it; undefined when it
   * published none (a broker of an older version) or is not known.
   */
  limitsAt(address: string): PublishLimits | undefined;
  /**
   * Where calls for `topic` go per the last heartbeat: the owner's address when another broker
   * owns it, or, when nobody does, the address of the broker it falls to; undefined for here.
   */
  route(topic: string): string | undefined;
  view(): ClusterView;
  /** Whether this broker holds the topic's lease now. */
  owns(topic: string): boolean;
  setHooks(hooks: ClusterHooks): void;
  /**
   * Stops taking topics and hands every owned one over (`nervebus drain-broker`); resolves
   * with how many were handed over.
   */
  drain(): Promise<number>;
}

/**
 * A call reached a broker that does not own its topic: UNAVAILABLE (retry), naming the owner,
 * whose address the API layer forwards to (and tells the client in `nervebus-owner`).
 */
export class NotOwnerError extends NerveBusError {
  constructor(
    readonly topic: string,
    readonly ownerAddress: string,
    detail: string,
  ) {
    super("unavailable", `topic ${topic} is served by broker ${ownerAddress} (${detail}); call it there`);
  }
}
