import { createHash, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { hostname } from "node:os";
import type mysql from "mysql2/promise";
import {
  type Cluster,
  type ClusterHooks,
  type ClusterMember,
  type ClusterView,
  NerveBusError,
  NotOwnerError,
  type PublishLimits,
  type TopicRecord,
} from "../../core/index.js";
import { mapStoreError } from "../errors.js";
import { DB_NOW_MS, failedBecause, type LeaseOptions } from "./lease.js";
import { addColumn } from "./schema.js";
import type { ServerPool } from "./server-pool.js";
import type { LeaseState, WriteGuard } from "./write-guard.js";

/** Owner of the store lease row while brokers share the database (no single broker owns it). */
const CLUSTER = "cluster";

/** A topic's lease row key. */
const unitOf = (topicId: number) => `topic:${topicId}`;

/**
 * Owner of a topic lease row whose topic moved to another database (`moved:HOST:PORT/DB`): the
 * row never lapses and its epoch is SEALED_EPOCH, so no broker takes the old copy again.
 */
export const MOVED_PREFIX = "moved:";

/** The epoch of a moved topic's lease and fence rows: above any drawn epoch, exact as a JS number. */
export const SEALED_EPOCH = Number.MAX_SAFE_INTEGER;

/** Who a broker is in `nb_brokers`: one per process, the same in every database it joins. */
export interface BrokerIdentity {
  /** host/pid/random. */
  readonly id: string;
  /** Its peer secret (see Cluster.secret). */
  readonly secret: string;
}

/** A new broker identity: the id (host/pid/random) and a peer secret. */
export function newBrokerIdentity(): BrokerIdentity {
  return {
    id: `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`,
    // 256 bits from the CSPRNG: guessing it is out of reach; a restart draws a new one.
    secret: randomBytes(32).toString("base64url"),
  };
}

/**
 * The last claim's tenure (TopicRecord.tenure), counted per process: a number is never given
 * twice, whichever database's lease it is of.
 */
let lastTenure = 0;

/** A topic lease this broker holds. */
interface Held {
  readonly name: string;
  readonly epoch: number;
  /** The claim the topic's calls carry; a call of another (an ended one) is refused. */
  tenure: number;
  /** performance.now() until which its writes may start. */
  validUntil: number;
  renewedAt: number;
}

/** A topic lease row as the last heartbeat read it. */
interface Route {
  readonly id: number;
  readonly owner: string;
  readonly epoch: number;
  /** On the database's clock. */
  readonly expiresAt: number;
}

/** A broker row as the last heartbeat read it. */
interface Member {
  readonly address: string;
  readonly expiresAt: number;
  readonly startedAt: number;
  readonly draining: boolean;
  /** Its peer secret ("" for a broker of a version without one: never verified). */
  readonly secret: string;
  /** The pack limits it takes (undefined for a broker of a version that published none). */
  readonly limits: PublishLimits | undefined;
}

/** The limits columns of nb_brokers, in PublishLimits order; 0 for a broker that published none. */
const LIMIT_COLUMNS = ["max_message_bytes", "max_pack_messages", "max_pack_bytes"] as const;

/** The limits, in LIMIT_COLUMNS order. */
const LIMIT_KEYS = ["maxMessageBytes", "maxPackMessages", "maxPackBytes"] as const;

/** A broker row's published limits; undefined when it published none (0s). */
function limitsOf(row: mysql.RowDataPacket): PublishLimits | undefined {
  const [maxMessageBytes, maxPackMessages, maxPackBytes] = LIMIT_COLUMNS.map((c) => Number(row[c]));
  if (!maxMessageBytes || !maxPackMessages || !maxPackBytes) return undefined;
  return { maxMessageBytes, maxPackMessages, maxPackBytes };
}

/** SHA-256 of a secret: equal-length inputs for timingSafeEqual, whatever was presented. */
const digest = (secret: string) => createHash("sha256").update(secret).digest();

/** Whether a call of `topic` belongs to the claim `held` (a record naming no claim belongs to any). */
const sameClaim = (topic: TopicRecord, held: Held) =>
  topic.tenure === undefined || topic.tenure === held.tenure;

/** Rendezvous (highest random weight) hashing: the broker a free topic falls to. */
function weight(topic: string, broker: string): number {
  return createHash("sha1").update(topic).update("\0").update(broker).digest().readUInt32BE(0);
}

/**
 * Several brokers on one database (`--cluster`). Each broker keeps a row in `nb_brokers` (its
 * advertised address, renewed every `renewMs`) and one `nb_lease` row per topic it owns; the
 * store's own lease row belongs to no broker but to the cluster, renewed by every member, so a
 * broker started without `--cluster` waits for it to lapse instead of taking the database.
 *
 * Each topic lease has its own epoch, drawn from one counter (the store row's epoch) so it is
 * higher than any epoch a fence row of the topic ever held; a new owner takes the lease and
 * then raises the topic's fence rows (FencedPool.raiseFence) before it reads the topic, which
 * fences every write of the previous owner. A free topic (never owned, released, or its
 * owner's lease lapsed) falls to one live broker by rendezvous hashing of its name over the live
 * brokers, so topics spread evenly and every broker agrees on where a topic goes.
 */
export class ClusterLease implements WriteGuard, Cluster {
  readonly owner: string;
  readonly secret: string;
  readonly #held = new Map<number, Held>();
  /**
   * Topics being handed over, each with its handover: claims of them are refused until the lease
   * is released, and stopHandovers() waits for them.
   */
  readonly #releasing = new Map<string, Promise<void>>();
  #routes = new Map<string, Route>();
  #members = new Map<string, Member>();
  /** The database's clock at the last heartbeat, and performance.now() then. */
  #dbNow = 0;
  #seenAt = 0;
  #address = "";
  /** What this broker published with its address (0s: none, see limitsAt). */
  #limits: PublishLimits | undefined;
  /** Brokers said to run with other limits than this one (once each). */
  readonly #otherLimits = new Set<string>();
  #draining = false;
  /** Set by stopHandovers(): no handover starts after it. */
  #closed = false;
  #lost: NerveBusError | undefined;
  #validUntil = 0;
  #renewedAt = 0;
  /** Why the last heartbeat failed (none succeeded since), for the error writes wait with. */
  #beatError: string | undefined;
  #epoch = 0;
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;
  #rebalancing: Promise<void> | undefined;
  #failovers = 0;
  #handovers = 0;
  #hooks: ClusterHooks = {
    adopt: () => undefined,
    lose: () => undefined,
    release: async () => undefined,
  };

  /**
   * `pool` is the lease's own (a couple of connections), closed by release(). `identity`: this
   * broker's id and secret, shared by the leases of every database it joins (several `--store`
   * URLs).
   */
  constructor(
    private readonly pool: ServerPool,
    private readonly options: LeaseOptions,
    identity: BrokerIdentity = newBrokerIdentity(),
  ) {
    this.owner = identity.id;
    this.secret = identity.secret;
  }

  get self(): string {
    return this.owner;
  }

  setHooks(hooks: ClusterHooks): void {
    this.#hooks = hooks;
  }

  /**
   * Joins the cluster: makes the store lease the cluster's (waiting up to `waitMs` for a broker
   * that owns the database alone to let it lapse, then fencing that broker's every topic) and
   * starts the heartbeat. Throws FAILED_PRECONDITION naming that broker when it keeps it.
   */
  async join(): Promise<void> {
    await this.pool.query(`
      CREATE TABLE IF NOT EXISTS nb_brokers (
        id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
        address VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
        expires_at BIGINT NOT NULL, started_at BIGINT NOT NULL,
        draining TINYINT NOT NULL DEFAULT 0,
        secret VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '') ENGINE=InnoDB`);
    await this.#addSecretColumn();
    // Added since (see addColumn): a broker of an older version leaves them 0.
    for (const column of LIMIT_COLUMNS)
      await addColumn(this.pool, "nb_brokers", column, "BIGINT NOT NULL DEFAULT 0");
    const giveUpAt = performance.now() + this.options.waitMs;
    for (;;) {
      const joining = this.#transaction("joining the cluster", async (conn) => {
        const [rows] = await conn.query<mysql.RowDataPacket[]>(
          `SELECT owner, epoch, expires_at, ${DB_NOW_MS} AS now FROM nb_lease WHERE unit = 'store' FOR UPDATE`,
        );
        const r = rows[0];
        if (r === undefined) {
          await conn.query(
            `INSERT INTO nb_lease (unit, owner, epoch, expires_at, acquired_at, lock_server)
               VALUES ('store', ?, 1, ${DB_NOW_MS} + ?, ${DB_NOW_MS}, '')`,
            [CLUSTER, this.options.ttlMs],
          );
        } else if (String(r.owner) !== CLUSTER) {
          if (Number(r.expires_at) > Number(r.now)) return String(r.owner);
          // A broker that owned the database alone let its lease lapse: fence all its writes.
          const epoch = Number(r.epoch) + 1;
          await conn.query(
            `UPDATE nb_lease SET owner = ?, epoch = ?, expires_at = ${DB_NOW_MS} + ?, acquired_at = ${DB_NOW_MS}
               WHERE unit = 'store'`,
            [CLUSTER, epoch, this.options.ttlMs],
          );
          await conn.query("UPDATE nb_fence SET epoch = ? WHERE epoch < ?", [epoch, epoch]);
        }
        await conn.query(`DELETE FROM nb_brokers WHERE expires_at < ${DB_NOW_MS} - 3600000`);
        return undefined;
      });
      // Another broker joining at the same moment holds the row: look again.
      const holder = await joining.catch((err: unknown) => {
        if (mapStoreError(err, "joining the cluster").code !== "unavailable" || performance.now() >= giveUpAt)
          throw err;
        return "another joining broker";
      });
      if (holder === undefined) break;
      if (performance.now() >= giveUpAt) {
        throw new NerveBusError(
          "failed_precondition",
          `the database is owned by broker ${holder}, started without --cluster; stop it (or let its lease expire) before starting brokers with --cluster`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    await this.heartbeat();
    this.#timer = setInterval(() => void this.heartbeat(), this.options.renewMs);
    this.#timer.unref();
    this.options.log("info", "joined the cluster", { broker: this.owner });
  }

  /**
   * A table made by a version without peer secrets gets the column (its brokers keep working:
   * their rows say "", which verifies nobody); see addColumn for two brokers adding it at once.
   */
  async #addSecretColumn(): Promise<void> {
    await addColumn(
      this.pool,
      "nb_brokers",
      "secret",
      "VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT ''",
    );
  }

  verifyPeer(id: string, secret: string): boolean {
    return this.knowsPeer(id) && timingSafeEqual(digest(secret), digest(this.#members.get(id)!.secret));
  }

  knowsPeer(id: string): boolean {
    const m = this.#members.get(id);
    return m !== undefined && m.secret !== "" && m.expiresAt > this.#dbClock();
  }

  async advertise(address: string, limits?: PublishLimits): Promise<void> {
    this.#address = address;
    this.#limits = limits;
    await this.heartbeat();
  }

  /**
   * Says once per broker that a live one runs with other pack limits than this one: its topics'
   * packs are checked against its own, so a producer's pack may be taken by one broker and
   * refused by another (README: "Between brokers", Limits).
   */
  #warnOtherLimits(): void {
    const own = this.#limits;
    if (own === undefined) return;
    const now = this.#dbClock();
    for (const [id, m] of this.#members) {
      const l = m.limits;
      if (id === this.owner || l === undefined || m.expiresAt <= now || this.#otherLimits.has(id)) continue;
      if (LIMIT_KEYS.every((k) => l[k] === own[k])) continue;
      this.#otherLimits.add(id);
      this.options.log(
        "warn",
        "a broker of the cluster runs with other pack limits; its topics' apply to them",
        {
          broker: id,
          address: m.address,
          limits: { ...l },
          ownLimits: { ...own },
        },
      );
    }
  }

  limitsAt(address: string): PublishLimits | undefined {
    const now = this.#dbClock();
    let found: Member | undefined;
    for (const m of this.#members.values())
      if (
        m.address === address &&
        m.expiresAt > now &&
        (found === undefined || m.startedAt > found.startedAt)
      )
        found = m;
    return found?.limits;
  }

  // ---- WriteGuard ----------------------------------------------------------------------------

  check(topic?: TopicRecord): void {
    if (this.#lost) throw this.#lost;
    const now = performance.now();
    if (now >= this.#validUntil) {
      throw new NerveBusError(
        "unavailable",
        `cluster membership not renewed for ${Math.round(now - this.#renewedAt)} ms (ttl ${this.options.ttlMs} ms); writes wait until it is${failedBecause(this.#beatError)}`,
      );
    }
    if (topic === undefined) return;
    const held = this.#held.get(topic.id);
    if (held === undefined)
      throw new NerveBusError("unavailable", `this broker does not own topic ${topic.name}; retry`);
    if (!sameClaim(topic, held))
      throw new NerveBusError(
        "unavailable",
        `this write of topic ${topic.name} belongs to an earlier claim of it by this broker, which lost the topic since (claim ${topic.tenure}, now ${held.tenure}); it is dropped: retry`,
      );
    if (now >= held.validUntil) {
      throw new NerveBusError(
        "unavailable",
        `lease of topic ${topic.name} not renewed for ${Math.round(now - held.renewedAt)} ms; writes wait until it is`,
      );
    }
  }

  /**
   * Whether this broker holds the topic's lease and knows it to be current: until then it
   * delivers nothing of the topic (a woken broker's in-memory state may lack acks the next owner
   * took since).
   */
  serves(topic: TopicRecord): boolean {
    const held = this.#heldFor(topic);
    const now = performance.now();
    return this.#lost === undefined && held !== undefined && now < held.validUntil && now < this.#validUntil;
  }

  epochOf(topic: TopicRecord): number {
    return this.#heldFor(topic)?.epoch ?? 0;
  }

  /** The lease of the topic this broker holds, if it is the claim `topic` names (any, when none). */
  #heldFor(topic: TopicRecord): Held | undefined {
    const held = this.#held.get(topic.id);
    return held !== undefined && sameClaim(topic, held) ? held : undefined;
  }

  unitOf(topic: TopicRecord): string {
    return unitOf(topic.id);
  }

  /**
   * Takes the topic's lease unless another broker holds a live one (NotOwnerError naming it)
   * or this broker is handing the topic over or draining (NotOwnerError naming where it goes).
   * Keeps a lease this broker holds, with its tenure. Returns the claim's tenure: `tenure` when
   * given (a move continues the claim of the source's copy on the target's), else a new one.
   */
  async claim(topic: TopicRecord, tenure?: number): Promise<number> {
    if (this.#lost) throw this.#lost;
    if (this.#releasing.has(topic.name) || (this.#draining && this.#preferred(topic.name) !== undefined)) {
      const to = this.#preferred(topic.name);
      throw new NotOwnerError(topic.name, to?.address ?? "", "this broker is handing it over");
    }
    const held = this.#held.get(topic.id);
    if (held !== undefined && performance.now() < held.validUntil) {
      // A move's claim of its new copy: calls of any earlier claim of that copy (a move cut
      // short) stop here.
      if (tenure !== undefined) held.tenure = tenure;
      return held.tenure;
    }
    if (this.#address === "")
      throw new NerveBusError("unavailable", "this broker is starting; it takes topics once it serves");
    for (let attempt = 0; ; attempt++) {
      const sentAt = performance.now();
      try {
        const outcome = await this.#take(topic);
        if ("owner" in outcome) {
          const member = this.#members.get(outcome.owner);
          throw new NotOwnerError(topic.name, member?.address ?? "", `owned by ${outcome.owner}`);
        }
        // A lease renewed after it lapsed here, with no owner in between, is the same claim.
        const claimed =
          tenure ?? (outcome.previous === "renewed" && held !== undefined ? held.tenure : ++lastTenure);
        this.#held.set(topic.id, {
          name: topic.name,
          epoch: outcome.epoch,
          tenure: claimed,
          renewedAt: sentAt,
          validUntil: sentAt + this.options.ttlMs - this.options.ttlMs / 10,
        });
        this.#routes.set(topic.name, {
          id: topic.id,
          owner: this.owner,
          epoch: outcome.epoch,
          expiresAt: this.#dbClock() + this.options.ttlMs,
        });
        if (outcome.previous === "failover") this.#failovers++;
        if (outcome.previous === "handover") this.#handovers++;
        this.options.log("info", "topic lease taken", {
          topic: topic.name,
          epoch: outcome.epoch,
          previous: outcome.previousOwner,
          how: outcome.previous,
        });
        return claimed;
      } catch (err) {
        const mapped = mapStoreError(err, `taking the lease of topic ${topic.name}`);
        // Two brokers claiming at once: the loser's transaction deadlocks; look again.
        if (mapped.code !== "unavailable" || mapped instanceof NotOwnerError || attempt >= 2) throw mapped;
      }
    }
  }

  markLost(topic: TopicRecord | undefined, detail: string): NerveBusError {
    if (
      topic !== undefined &&
      this.#lost === undefined &&
      this.#held.has(topic.id) &&
      !this.#heldFor(topic)
    ) {
      // A write of an ended claim found a newer epoch: the claim held now is not the one it tells of.
      return new NerveBusError(
        "unavailable",
        `this write of topic ${topic.name} belongs to an earlier claim of it by this broker (${detail}); it is dropped: retry`,
      );
    }
    if (topic !== undefined && this.#lost === undefined) {
      const err = new NerveBusError(
        "unavailable",
        `this broker no longer owns topic ${topic.name} (${detail}); retry: the call goes to its current owner`,
      );
      if (this.#held.delete(topic.id)) {
        this.options.log("warn", "topic lease lost; this broker stops serving the topic", {
          topic: topic.name,
          detail,
        });
        this.#hooks.lose(topic.name, err);
      }
      return err;
    }
    if (this.#lost) return this.#lost;
    clearInterval(this.#timer);
    this.#validUntil = 0;
    this.#held.clear();
    this.#lost = new NerveBusError(
      "unavailable",
      `this broker no longer belongs to the cluster (${detail}); it confirms nothing more: retry on another broker`,
    );
    this.options.log("error", "the database is no longer the cluster's; this broker stops serving", {
      detail,
    });
    this.options.onLost(this.#lost);
    return this.#lost;
  }

  state(): LeaseState {
    return {
      owner: this.owner,
      epoch: this.#epoch,
      ageMs: Math.round(performance.now() - this.#renewedAt),
      valid: this.#lost === undefined && performance.now() < this.#validUntil,
      lost: this.#lost?.message,
      topicsOwned: this.#held.size,
    };
  }

  /**
   * Stops the heartbeat and waits for the topic handovers in progress (rebalancing, drain) to
   * end; none starts after it. A handover writes its topic's state, then releases its lease:
   * closing the store under it left the state unwritten with the lease released (release()).
   * A store over several databases calls it on every lease before it closes any of them.
   */
  async stopHandovers(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#beating?.catch(() => undefined);
    if (this.#releasing.size === 0) return;
    this.options.log("info", "closing: waiting for topic handovers to end", {
      topics: [...this.#releasing.keys()],
    });
    await Promise.all(this.#releasing.values());
  }

  /** Releases every topic lease and leaves the cluster, so others take its topics at once. */
  async release(): Promise<void> {
    await this.stopHandovers();
    if (this.#lost === undefined) {
      const units = [...this.#held.keys()].map(unitOf);
      if (units.length > 0) {
        await this.pool
          .query("UPDATE nb_lease SET expires_at = 0 WHERE owner = ? AND unit IN (?)", [this.owner, units])
          .catch(() => undefined);
      }
      await this.pool.query("DELETE FROM nb_brokers WHERE id = ?", [this.owner]).catch(() => undefined);
    }
    this.#held.clear();
    this.#validUntil = 0;
    await this.pool.end().catch(() => undefined);
  }

  /** Hands one topic's lease back (its state is persisted by then): the next owner takes it at once. */
  async releaseTopic(topic: TopicRecord): Promise<void> {
    const held = this.#heldFor(topic);
    if (held === undefined) return;
    this.#held.delete(topic.id);
    this.#routes.set(topic.name, { id: topic.id, owner: this.owner, epoch: held.epoch, expiresAt: 0 });
    try {
      await this.pool.query("UPDATE nb_lease SET expires_at = 0 WHERE unit = ? AND owner = ? AND epoch = ?", [
        unitOf(topic.id),
        this.owner,
        held.epoch,
      ]);
    } catch (err) {
      // The lease then lapses on its own: the next owner waits for it, nothing is lost.
      this.options.log("warn", "releasing a topic lease failed; it lapses instead", {
        topic: topic.name,
        err: String(err),
      });
    }
  }

  /** The topic was deleted: its lease row went with it. */
  forget(topic: TopicRecord): void {
    this.#held.delete(topic.id);
    this.#routes.delete(topic.name);
  }

  /** Whether this database holds a lease row of the topic (its calls are routed by this lease). */
  knows(topic: string): boolean {
    return this.#routes.has(topic) || this.owns(topic);
  }

  // ---- Cluster -------------------------------------------------------------------------------

  owns(topic: string): boolean {
    for (const h of this.#held.values()) if (h.name === topic) return true;
    return false;
  }

  route(topic: string): string | undefined {
    if (this.owns(topic)) return undefined;
    const r = this.#routes.get(topic);
    if (r !== undefined && r.owner !== this.owner && r.expiresAt > this.#dbClock()) {
      const address = this.#members.get(r.owner)?.address;
      return address === "" ? undefined : address;
    }
    return this.#preferred(topic)?.address;
  }

  view(): ClusterView {
    const now = this.#dbClock();
    const members: ClusterMember[] = [...this.#members].map(([id, m]) => ({
      id,
      address: m.address,
      heartbeatAgeMs: Math.max(0, Math.round(now - (m.expiresAt - this.options.ttlMs))),
      live: m.expiresAt > now,
      draining: m.draining,
      topics: [...this.#routes]
        .filter(([, r]) => r.owner === id && r.expiresAt > now)
        .map(([name, r]) => {
          const held = id === this.owner ? this.#held.get(r.id) : undefined;
          return {
            name,
            epoch: r.epoch,
            leaseAgeMs: Math.round(
              held === undefined
                ? Math.max(0, now - (r.expiresAt - this.options.ttlMs))
                : performance.now() - held.renewedAt,
            ),
          };
        })
        .sort((a, b) => (a.name < b.name ? -1 : 1)),
    }));
    return { self: this.owner, members, failovers: this.#failovers, handovers: this.#handovers };
  }

  async drain(): Promise<number> {
    this.#draining = true;
    await this.heartbeat();
    const names = [...this.#held.values()].map((h) => h.name);
    this.options.log("info", "draining: handing topics over", { topics: names.length });
    for (const name of names) await this.#handOver(name);
    return names.length;
  }

  // ---- heartbeat -----------------------------------------------------------------------------

  /** Renews membership and topic leases, reads the cluster, adopts orphaned topics, rebalances. */
  heartbeat(): Promise<void> {
    this.#beating ??= this.#beat().finally(() => {
      this.#beating = undefined;
    });
    return this.#beating;
  }

  async #beat(): Promise<void> {
    if (this.#lost) return;
    const sentAt = performance.now();
    const renewing = [...this.#held].map(([id, h]) => ({ id, ...h }));
    try {
      const [store] = await this.pool.query<mysql.ResultSetHeader>(
        `UPDATE nb_lease SET expires_at = ${DB_NOW_MS} + ? WHERE unit = 'store' AND owner = ?`,
        [this.options.ttlMs, CLUSTER],
      );
      if (store.affectedRows !== 1) {
        const [rows] = await this.pool.query<mysql.RowDataPacket[]>(
          "SELECT owner FROM nb_lease WHERE unit = 'store'",
        );
        if (rows[0] === undefined || String(rows[0].owner) !== CLUSTER) {
          this.markLost(
            undefined,
            rows[0] === undefined
              ? "the store lease row is gone"
              : `broker ${String(rows[0].owner)} took the database`,
          );
          return;
        }
      }
      await this.pool.query(
        `INSERT INTO nb_brokers (id, address, expires_at, started_at, draining, secret, ${LIMIT_COLUMNS.join(", ")})
           VALUES (?, ?, ${DB_NOW_MS} + ?, ${DB_NOW_MS}, ?, ?, ?, ?, ?)
           ON DUPLICATE KEY UPDATE address = VALUES(address), expires_at = VALUES(expires_at),
             draining = VALUES(draining), secret = VALUES(secret),
             ${LIMIT_COLUMNS.map((c) => `${c} = VALUES(${c})`).join(", ")}`,
        [
          this.owner,
          this.#address,
          this.options.ttlMs,
          this.#draining ? 1 : 0,
          this.secret,
          ...LIMIT_KEYS.map((k) => this.#limits?.[k] ?? 0),
        ],
      );
      if (renewing.length > 0) {
        await this.pool.query(
          `UPDATE nb_lease SET expires_at = ${DB_NOW_MS} + ? WHERE owner = ? AND unit IN (?) AND expires_at > 0`,
          [this.options.ttlMs, this.owner, renewing.map((h) => unitOf(h.id))],
        );
      }
      const [leases] = await this.pool.query<mysql.RowDataPacket[]>(
        `SELECT t.id, t.name, l.owner, l.epoch, l.expires_at, ${DB_NOW_MS} AS now
           FROM nb_lease l JOIN nb_topics t ON l.unit = CONCAT('topic:', t.id)`,
      );
      const [brokers] = await this.pool.query<mysql.RowDataPacket[]>(
        `SELECT id, address, expires_at, started_at, draining, secret, ${LIMIT_COLUMNS.join(", ")} FROM nb_brokers`,
      );
      this.#renewedAt = sentAt;
      this.#beatError = undefined;
      this.#validUntil = sentAt + this.options.ttlMs - this.options.ttlMs / 10;
      this.#dbNow = leases.length > 0 ? Number(leases[0]!.now) : await this.#readDbNow();
      this.#seenAt = performance.now();
      this.#members = new Map(
        brokers.map((b) => [
          String(b.id),
          {
            address: String(b.address),
            expiresAt: Number(b.expires_at),
            startedAt: Number(b.started_at),
            draining: Number(b.draining) === 1,
            secret: String(b.secret),
            limits: limitsOf(b),
          },
        ]),
      );
      this.#warnOtherLimits();
      const routes = new Map<string, Route>();
      for (const l of leases) {
        // A moved topic's old copy: it is served from its new database only.
        if (String(l.owner).startsWith(MOVED_PREFIX)) continue;
        routes.set(String(l.name), {
          id: Number(l.id),
          owner: String(l.owner),
          epoch: Number(l.epoch),
          expiresAt: Number(l.expires_at),
        });
      }
      this.#routes = routes;
      for (const h of renewing) {
        const r = [...routes.values()].find((x) => x.id === h.id);
        if (this.#held.get(h.id)?.epoch !== h.epoch) continue;
        if (r === undefined || r.owner !== this.owner || r.epoch !== h.epoch) {
          this.markLost(
            { id: h.id, name: h.name } as TopicRecord,
            r === undefined ? "its lease row is gone" : `broker ${r.owner} took it at epoch ${r.epoch}`,
          );
          continue;
        }
        const held = this.#held.get(h.id)!;
        held.renewedAt = sentAt;
        held.validUntil = sentAt + this.options.ttlMs - this.options.ttlMs / 10;
      }
      if (this.#address !== "") this.#adoptOrphans();
      this.#rebalance();
    } catch (err) {
      this.#beatError = err instanceof Error ? err.message : String(err);
      this.options.log("warn", "cluster heartbeat failed", {
        err: String(err),
        ageMs: Math.round(performance.now() - this.#renewedAt),
      });
    }
  }

  async #readDbNow(): Promise<number> {
    const [rows] = await this.pool.query<mysql.RowDataPacket[]>(`SELECT ${DB_NOW_MS} AS now`);
    return Number(rows[0]!.now);
  }

  /** The database's clock now, as estimated from the last heartbeat. */
  #dbClock(): number {
    return this.#dbNow + (performance.now() - this.#seenAt);
  }

  /** Live brokers that take topics (this one included unless draining), by id. */
  #candidates(): Map<string, string> {
    const now = this.#dbClock();
    const out = new Map<string, string>();
    for (const [id, m] of this.#members)
      if (m.expiresAt > now && !m.draining && m.address !== "" && id !== this.owner) out.set(id, m.address);
    if (!this.#draining && this.#address !== "" && this.#lost === undefined)
      out.set(this.owner, this.#address);
    return out;
  }

  /** The live broker a free topic falls to, or undefined when it is this one (or none is live). */
  #preferred(topic: string): { id: string; address: string } | undefined {
    let best: { id: string; address: string; w: number } | undefined;
    for (const [id, address] of this.#candidates()) {
      const w = weight(topic, id);
      if (best === undefined || w > best.w || (w === best.w && id < best.id)) best = { id, address, w };
    }
    return best === undefined || best.id === this.owner ? undefined : best;
  }

  /** Topics whose owner's lease lapsed (or was released) and that fall to this broker. */
  #adoptOrphans(): void {
    if (this.#draining) return;
    const now = this.#dbClock();
    for (const [name, r] of this.#routes) {
      if (r.expiresAt > now || this.#held.has(r.id) || this.#releasing.has(name)) continue;
      if (this.#preferred(name) !== undefined) continue;
      this.#hooks.adopt(name);
    }
  }

  /**
   * Fair share: a broker holding more than its share hands over one topic per heartbeat that
   * falls to another broker live for a while (a broker that just started gets topics only once
   * every other broker has seen it, so views agree and topics do not move back and forth).
   */
  #rebalance(): void {
    if (this.#draining || this.#closed || this.#rebalancing !== undefined) return;
    const live = this.#candidates();
    if (live.size < 2) return;
    const now = this.#dbClock();
    let owned = 0;
    for (const r of this.#routes.values()) if (r.expiresAt > now) owned++;
    if (this.#held.size <= Math.ceil(owned / live.size)) return;
    for (const h of this.#held.values()) {
      const to = this.#preferred(h.name);
      const member = to === undefined ? undefined : this.#members.get(to.id);
      if (member === undefined || now - member.startedAt < 3 * this.options.ttlMs) continue;
      this.#rebalancing = this.#handOver(h.name).finally(() => {
        this.#rebalancing = undefined;
      });
      return;
    }
  }

  /** Hands the topic over unless this lease is closing (a drain cut short: see stopHandovers()). */
  async #handOver(name: string): Promise<void> {
    if (this.#closed) return;
    const handing = this.#hooks.release(name).catch((err: unknown) => {
      this.options.log("warn", "handing a topic over failed", { topic: name, err: String(err) });
    });
    this.#releasing.set(name, handing);
    try {
      await handing;
    } finally {
      if (this.#releasing.get(name) === handing) this.#releasing.delete(name);
    }
  }

  /**
   * The lease statements of a claim, each its own short autocommit statement: no lock is held
   * across round trips, so a claimer frozen half-way (SIGSTOP, a VM pause) blocks nobody. A new
   * epoch is drawn from the store row's counter first; the topic row is then inserted, or taken
   * over only if its lease lapsed (or is this broker's) and its epoch is lower than the new one,
   * so of two brokers claiming at once exactly one wins, and a stale epoch never takes a row.
   */
  async #take(
    topic: TopicRecord,
  ): Promise<
    | { owner: string }
    | { epoch: number; previous: "new" | "failover" | "handover" | "renewed"; previousOwner: string }
  > {
    const unit = unitOf(topic.id);
    const held = this.#held.get(topic.id);
    const [before] = await this.pool.query<mysql.RowDataPacket[]>(
      `SELECT owner, epoch, expires_at, ${DB_NOW_MS} AS now FROM nb_lease WHERE unit = ?`,
      [unit],
    );
    const r = before[0];
    if (r !== undefined && String(r.owner) !== this.owner && Number(r.expires_at) > Number(r.now))
      return { owner: String(r.owner) };
    if (
      r !== undefined &&
      held !== undefined &&
      String(r.owner) === this.owner &&
      Number(r.epoch) === held.epoch
    ) {
      const [renewed] = await this.pool.query<mysql.ResultSetHeader>(
        `UPDATE nb_lease SET expires_at = ${DB_NOW_MS} + ? WHERE unit = ? AND owner = ? AND epoch = ?`,
        [this.options.ttlMs, unit, this.owner, held.epoch],
      );
      if (renewed.affectedRows === 1)
        return { epoch: held.epoch, previous: "renewed" as const, previousOwner: this.owner };
    }
    // LAST_INSERT_ID(expr) hands the incremented value back in the same statement.
    const [drawn] = await this.pool.query<mysql.ResultSetHeader>(
      "UPDATE nb_lease SET epoch = LAST_INSERT_ID(epoch + 1) WHERE unit = 'store' AND owner = ?",
      [CLUSTER],
    );
    if (drawn.affectedRows !== 1)
      throw this.markLost(undefined, "the store lease is not the cluster's any more");
    const epoch = Number(drawn.insertId);
    this.#epoch = epoch;
    let taken: boolean;
    if (r === undefined) {
      const [inserted] = await this.pool.query<mysql.ResultSetHeader>(
        `INSERT IGNORE INTO nb_lease (unit, owner, epoch, expires_at, acquired_at, lock_server)
           VALUES (?, ?, ?, ${DB_NOW_MS} + ?, ${DB_NOW_MS}, '')`,
        [unit, this.owner, epoch, this.options.ttlMs],
      );
      taken = inserted.affectedRows === 1;
    } else {
      const [updated] = await this.pool.query<mysql.ResultSetHeader>(
        `UPDATE nb_lease SET owner = ?, epoch = ?, expires_at = ${DB_NOW_MS} + ?, acquired_at = ${DB_NOW_MS}
           WHERE unit = ? AND epoch < ? AND (expires_at <= ${DB_NOW_MS} OR owner = ?)`,
        [this.owner, epoch, this.options.ttlMs, unit, epoch, this.owner],
      );
      taken = updated.affectedRows === 1;
    }
    if (!taken) {
      // Another broker won the race: name it.
      const [now] = await this.pool.query<mysql.RowDataPacket[]>(
        "SELECT owner FROM nb_lease WHERE unit = ?",
        [unit],
      );
      return { owner: String(now[0]?.owner ?? "unknown") };
    }
    const previous = r === undefined ? "new" : Number(r.expires_at) === 0 ? "handover" : "failover";
    return { epoch, previous, previousOwner: r === undefined ? "none" : String(r.owner) };
  }

  /** Runs `fn` in a transaction that commits when it returns and rolls back when it throws. */
  async #transaction<T>(what: string, fn: (conn: mysql.PoolConnection) => Promise<T>): Promise<T> {
    try {
      return await this.pool.transaction(async (conn) => ({ commit: true, value: await fn(conn) }));
    } catch (err) {
      throw mapStoreError(err, what);
    }
  }
}
