import type {
  Cluster,
  ClusterHooks,
  ClusterMember,
  ClusterView,
  OwnedTopic,
  PublishLimits,
} from "../../core/index.js";
import type { BrokerIdentity, ClusterLease } from "../mysql/cluster-lease.js";

/**
 * One cluster over several MySQL databases (`--cluster` with several `--store` URLs). Each
 * database runs its own ClusterLease: its `nb_brokers` rows, its epoch counter and its topics'
 * lease and fence rows live next to those topics' logs, so every write's fence check is in the
 * write's own transaction, a database out of reach stalls only its own topics, and a broker that
 * cannot reach a database drops out of that database's membership only (its topics there fall
 * to brokers that can). Every lease carries the same broker id and peer secret; this joins them
 * into the one Cluster the API layer and the broker see.
 */
export class MultiCluster implements Cluster {
  #hooks: ClusterHooks | undefined;
  #address = "";
  #limits: PublishLimits | undefined;

  readonly self: string;
  readonly secret: string;

  constructor(
    identity: BrokerIdentity,
    /** The leases of the databases open now, in `--store` order. */
    private readonly leases: () => readonly ClusterLease[],
    /** The lease of the database the topic is known to live in, if known here. */
    private readonly placedOn: (topic: string) => ClusterLease | undefined,
  ) {
    this.self = identity.id;
    this.secret = identity.secret;
  }

  /** A database opened late (unreachable at start): give its lease the hooks and the address. */
  async attach(lease: ClusterLease): Promise<void> {
    if (this.#hooks !== undefined) lease.setHooks(this.#hooks);
    if (this.#address !== "") await lease.advertise(this.#address, this.#limits);
  }

  async advertise(address: string, limits?: PublishLimits): Promise<void> {
    this.#address = address;
    this.#limits = limits;
    await Promise.all(this.leases().map((l) => l.advertise(address, limits)));
  }

  /** Every database's membership holds the broker's row: the first that knows it tells. */
  limitsAt(address: string): PublishLimits | undefined {
    for (const l of this.leases()) {
      const limits = l.limitsAt(address);
      if (limits !== undefined) return limits;
    }
    return undefined;
  }

  setHooks(hooks: ClusterHooks): void {
    this.#hooks = hooks;
    for (const l of this.leases()) l.setHooks(hooks);
  }

  /**
   * Asks the lease of the topic's database. A topic this broker has not placed yet is looked for
   * in every database's lease rows; a topic nobody has placed goes by the first open database's
   * membership (the broker it falls to creates it).
   */
  route(topic: string): string | undefined {
    return this.#leaseOf(topic)?.route(topic);
  }

  /** A broker of the cluster registers its one secret in every database it reaches. */
  verifyPeer(id: string, secret: string): boolean {
    return this.leases().some((l) => l.verifyPeer(id, secret));
  }

  knowsPeer(id: string): boolean {
    return this.leases().some((l) => l.knowsPeer(id));
  }

  owns(topic: string): boolean {
    return this.leases().some((l) => l.owns(topic));
  }

  /** Each broker once, live when any database sees it live, with its topics of every database. */
  view(): ClusterView {
    const members = new Map<string, ClusterMember>();
    let failovers = 0;
    let handovers = 0;
    for (const lease of this.leases()) {
      const v = lease.view();
      failovers += v.failovers;
      handovers += v.handovers;
      for (const m of v.members) {
        const seen = members.get(m.id);
        if (seen === undefined) {
          members.set(m.id, m);
          continue;
        }
        const topics = new Map<string, OwnedTopic>(seen.topics.map((t) => [t.name, t]));
        for (const t of m.topics) topics.set(t.name, t);
        members.set(m.id, {
          id: m.id,
          address: seen.address === "" ? m.address : seen.address,
          heartbeatAgeMs: Math.min(seen.heartbeatAgeMs, m.heartbeatAgeMs),
          live: seen.live || m.live,
          draining: seen.draining || m.draining,
          topics: [...topics.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
        });
      }
    }
    return { self: this.self, members: [...members.values()], failovers, handovers };
  }

  /** Drains every database's lease; resolves with how many topics were handed over. */
  async drain(): Promise<number> {
    let handed = 0;
    for (const l of this.leases()) handed += await l.drain();
    return handed;
  }

  /** Waits for every database's handovers in progress (see ClusterLease.stopHandovers); none starts after. */
  async stopHandovers(): Promise<void> {
    await Promise.all(this.leases().map((l) => l.stopHandovers()));
  }

  #leaseOf(topic: string): ClusterLease | undefined {
    const placed = this.placedOn(topic);
    if (placed?.knows(topic)) return placed;
    const all = this.leases();
    return all.find((l) => l.knows(topic)) ?? placed ?? all[0];
  }
}
