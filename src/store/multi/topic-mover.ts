import { NerveBusError, type TopicRecord, withTenure } from "../../core/index.js";
import type { HostSet } from "./host-set.js";
import type { HostSlot, PlacedTopic } from "./placed-topic.js";
import { TopicCopier } from "./topic-copier.js";

/** What the store does around a move's copy: hold the topic's writes, and switch the catalog. */
export interface MoveSteps {
  /** Makes new writes of the topic wait and resolves once those in progress ended; returns the resume. */
  pause(): Promise<() => void>;
  /** Points the topic at the target (one catalog transaction) and routes its calls there. */
  switchTo(local: TopicRecord): Promise<void>;
}

type Log = (level: "warn" | "info" | "error", msg: string, fields?: Record<string, unknown>) => void;

/**
 * One move of a topic between MySQL databases. Bulk copy while the topic keeps serving, then,
 * with its writes held, the tail and its catalog rows, then the switch, then the writes resume on
 * the target and the source's copy is dropped once no call uses it. Until the switch the topic
 * lives on the source and nothing on the target is read; a copy left by a crash is dropped by
 * the next move (or creation) to that database. With `--cluster` the source copy is sealed
 * before the switch (MysqlStore.sealMoved): a broker that finds the seal finishes the switch.
 */
export class TopicMover {
  constructor(
    private readonly hosts: HostSet,
    private readonly placed: PlacedTopic,
    private readonly target: HostSlot,
    private readonly log: Log,
    /**
     * `--cluster`: the claim of the topic the move is made under (TopicRecord.tenure). The seal
     * proves that claim, not whichever this broker holds by then: a broker that lost the topic
     * during the copy and claimed it again has a source changed under the copy (its tail
     * recovered, other owners' acks), so the move fails. The new copy continues the claim.
     */
    private readonly tenure?: number,
  ) {}

  /** Moves the topic; returns the rows copied. Throws NerveBusError; the topic then stays where it was. */
  async move(steps: MoveSteps): Promise<number> {
    const name = this.placed.local.name;
    const source = this.hosts.store(this.placed.host);
    const target = this.hosts.store(this.target);
    await this.dropCopies([this.target]);
    const src = withTenure(this.placed.local, this.tenure);
    const made = await target.ensureTopic(name, {
      shards: src.shards,
      config: src.config,
      format: src.format,
    });
    if (made === null)
      throw new NerveBusError("internal", `topic ${name} was not created on ${this.target.key}`);
    // The copy's writes are fenced on the target like any write (with --cluster: by this
    // broker's lease of the new copy, taken here; nothing routes to it before the switch).
    const copy = await target.claimTopic(made.topic, this.tenure);
    const copier = new TopicCopier(
      { db: source.fencedPool, topic: src },
      { db: target.fencedPool, topic: copy },
    );
    const started = performance.now();
    const marks = await copier.marks();
    let rows = await copier.copy([], marks, false);
    const resume = await steps.pause();
    let pausedMs = 0;
    try {
      const paused = performance.now();
      // Above the marks with REPLACE: a tail recovered on the source since could have been
      // copied and then written again with other content.
      rows += await copier.copy(marks, [], true);
      await copier.trim();
      await copier.copyCatalog();
      // --cluster: proves this broker still owns the topic on the source and closes that copy to
      // every writer, so nothing confirmed there after the copy can be left behind by the switch.
      await source.sealMoved(src, this.target.key);
      const [config] = await source.listTopics().then((ts) => ts.filter((t) => t.name === name));
      await steps.switchTo({ ...made.topic, config: config?.config ?? src.config, createdAt: src.createdAt });
      pausedMs = Math.round(performance.now() - paused);
    } finally {
      resume();
    }
    this.log("info", "topic moved", {
      topic: name,
      from: this.placed.host.key,
      to: this.target.key,
      rows,
      ms: Math.round(performance.now() - started),
      writesHeldMs: pausedMs,
    });
    await this.placed.idle("calls");
    await source.dropCopy(src).catch((err: unknown) =>
      this.log("warn", "dropping a moved topic's old copy failed; the next move of it drops it", {
        topic: name,
        host: this.placed.host.key,
        err: String(err),
      }),
    );
    return rows;
  }

  /** Drops the topic's copies (left by a crash) on the given databases, never the one it lives on. */
  async dropCopies(slots: readonly HostSlot[]): Promise<void> {
    const name = this.placed.local.name;
    for (const slot of slots) {
      if (slot === this.placed.host || slot.store === undefined) continue;
      const stale = await slot.store.ensureTopic(name, null);
      if (stale === null) continue;
      await slot.store.dropCopy(stale.topic);
      this.log("info", "dropped a copy of a topic a crash left behind", { topic: name, host: slot.key });
    }
  }
}
