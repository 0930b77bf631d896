import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";
import * as core from "../../core/index.js";
import type { IndexedRun, RunRow } from "../../wire/index.js";
import { SpaceWatch } from "../space-watch.js";
import { lockSqliteFile } from "./sqlite-lock.js";
import { type EncodedInsert, encodeMessages, encodeRuns, SqliteStore } from "./sqlite-store.js";
import {
  type FromWriter,
  receiveError,
  type WriteMethod,
  type WriteOp,
  type WriteResult,
} from "./sqlite-writer-protocol.js";

interface PendingWrite {
  readonly op: WriteOp;
  readonly transfer: readonly ArrayBuffer[];
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

/** A compact copy of a byte range, whose own ArrayBuffer can move to the writer thread uncopied. */
function movable(bytes: Uint8Array, transfer: ArrayBuffer[]): Uint8Array {
  const copy = new Uint8Array(bytes);
  transfer.push(copy.buffer);
  return copy;
}

/**
 * The rows of one insert as sent: the broker keeps its buffers (the tail cache holds run
 * bodies, and a body may be a view into a larger request), so each is copied once, into an
 * ArrayBuffer of its own that is transferred rather than cloned again.
 */
function sendable(e: EncodedInsert, transfer: ArrayBuffer[]): EncodedInsert {
  // Format 1 writes only these four fields of a message.
  const rows = e.rows.map((r) => ({
    seq: r.seq,
    publishTime: r.publishTime,
    meta: movable(r.meta, transfer),
    data: movable(r.data, transfer),
  }));
  const runs = e.runs.map(
    (r): RunRow => ({
      firstSeq: r.firstSeq,
      lastSeq: r.lastSeq,
      firstTime: r.firstTime,
      lastTime: r.lastTime,
      bytes: r.bytes,
      body: movable(r.body, transfer) as Buffer,
      ids: r.ids === null ? null : (movable(r.ids, transfer) as Buffer),
    }),
  );
  return { rows: rows as core.LogMessage[], runs };
}

/**
 * The embedded store with its writes on a thread of their own (--sqlite-writer-thread): a
 * worker owns the write connection (WAL, synchronous=FULL, as SqliteStore) and runs every write
 * there, so waiting for fsync no longer stops deliveries, responses and reads. This thread keeps
 * a read-only connection; WAL shows it every committed transaction, and a write is confirmed
 * only after its commit, so a read after a confirmed write sees it.
 *
 * Writes go to the worker in the order issued, one batch at a time: those issued while a batch
 * commits form the next one (one transaction for its inserts: group commit). A write fails with
 * the error the in-thread store would throw. If the worker dies, every pending and later write
 * fails INTERNAL: the broker stops confirming rather than waiting. `PATH-lock` (sqliteLock)
 * keeps a second broker off the file.
 */
export class SqliteThreadedStore implements core.Store {
  readonly capabilities: core.StoreCapabilities;
  readonly #reader: SqliteStore;
  readonly #lock: Database.Database;
  readonly #worker: Worker;
  #queue: PendingWrite[] = [];
  #inFlight: PendingWrite[] | undefined;
  #sendScheduled = false;
  #failed: core.NerveBusError | undefined;
  #closed = false;
  /** Whether the file's disk is full, as the writer thread's results tell. */
  readonly #space: SpaceWatch;

  private constructor(reader: SqliteStore, lock: Database.Database, worker: Worker, space: SpaceWatch) {
    this.#reader = reader;
    this.#lock = lock;
    this.#worker = worker;
    this.#space = space;
    this.capabilities = reader.capabilities;
    worker.on("message", (msg: FromWriter) => {
      if (msg.kind === "done") this.#done(msg.results);
    });
    worker.on("error", (err) => this.#fail(`failed: ${err.message}`));
    worker.on("exit", (code) => {
      if (!this.#closed) this.#fail(`exited (code ${code})`);
    });
  }

  /**
   * Takes the file's lock, starts the writer thread (which opens the file) and opens the reader.
   * `writer` is the thread's script (tests give one that dies, to show what a crash does);
   * `log` hears when the disk fills and has room again.
   */
  static async open(
    path: string,
    writer: URL = new URL("./sqlite-writer-thread.js", import.meta.url),
    log?: core.LogFn,
  ): Promise<SqliteThreadedStore> {
    const lock = lockSqliteFile(path);
    const worker = new Worker(writer, { workerData: { path } });
    let onMessage: (msg: FromWriter) => void = () => undefined;
    let onExit: (code: number) => void = () => undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        onMessage = (msg) => {
          if (msg.kind === "ready") resolve();
          else if (msg.kind === "open-failed") reject(receiveError(msg.error));
        };
        onExit = (code) =>
          reject(new core.NerveBusError("internal", `SQLite writer thread exited (code ${code})`));
        worker.on("message", onMessage).on("error", reject).on("exit", onExit);
      });
      return new SqliteThreadedStore(
        SqliteStore.open(path, "reader"),
        lock,
        worker,
        new SpaceWatch(path, log),
      );
    } catch (err) {
      await worker.terminate();
      lock.close();
      throw err;
    } finally {
      worker.off("message", onMessage).off("exit", onExit);
    }
  }

  #write<M extends WriteMethod>(
    method: M,
    args: Parameters<SqliteStore[M]>,
    transfer: readonly ArrayBuffer[] = [],
  ): ReturnType<SqliteStore[M]> {
    return new Promise<unknown>((resolve, reject) => {
      if (this.#failed !== undefined) return reject(this.#failed);
      this.#queue.push({ op: { method, args } as WriteOp, transfer, resolve, reject });
      // Writes of this turn go together, as the in-thread store's inserts of one turn do.
      if (this.#inFlight !== undefined || this.#sendScheduled) return;
      this.#sendScheduled = true;
      setImmediate(() => {
        this.#sendScheduled = false;
        this.#send();
      });
    }) as ReturnType<SqliteStore[M]>;
  }

  #send(): void {
    if (this.#inFlight !== undefined || this.#queue.length === 0 || this.#failed !== undefined) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#inFlight = batch;
    this.#worker.postMessage(
      batch.map((w) => w.op),
      batch.flatMap((w) => w.transfer),
    );
  }

  #done(results: readonly WriteResult[]): void {
    const batch = this.#inFlight ?? [];
    this.#inFlight = undefined;
    batch.forEach((w, i) => {
      const r = results[i];
      if (r === undefined) w.reject(new core.NerveBusError("internal", "SQLite writer thread lost a write"));
      else if (r.ok) {
        if (w.op.method === "insertEncoded") this.#space.inserted();
        w.resolve(r.value);
      } else {
        const err = receiveError(r.error);
        this.#space.failed(err);
        w.reject(err);
      }
    });
    this.#send();
  }

  #fail(how: string): void {
    if (this.#failed !== undefined) return;
    this.#failed = new core.NerveBusError("internal", `store failed: the SQLite writer thread ${how}`);
    const pending = [...(this.#inFlight ?? []), ...this.#queue];
    this.#inFlight = undefined;
    this.#queue = [];
    for (const w of pending) w.reject(this.#failed);
  }

  ensureTopic(
    name: string,
    create: { shards: number; config: core.TopicConfig; format?: core.LogFormat } | null,
  ) {
    return this.#write("ensureTopic", [name, create]);
  }

  listTopics() {
    return this.#reader.listTopics();
  }

  updateTopicConfig(topic: core.TopicRecord, config: core.TopicConfig) {
    return this.#write("updateTopicConfig", [topic, config]);
  }

  deleteTopic(topic: core.TopicRecord) {
    return this.#write("deleteTopic", [topic]);
  }

  loadTopicSchema(topic: core.TopicRecord) {
    return this.#reader.loadTopicSchema(topic);
  }

  saveTopicSchema(topic: core.TopicRecord, schema: core.TopicSchema | null) {
    return this.#write("saveTopicSchema", [topic, schema]);
  }

  ensureSubscription(topic: core.TopicRecord, name: string, create: core.SubscriptionConfig | null) {
    return this.#write("ensureSubscription", [topic, name, create]);
  }

  listSubscriptions(topic: core.TopicRecord) {
    return this.#reader.listSubscriptions(topic);
  }

  updateSubscriptionConfig(topic: core.TopicRecord, name: string, config: core.SubscriptionConfig) {
    return this.#write("updateSubscriptionConfig", [topic, name, config]);
  }

  deleteSubscription(topic: core.TopicRecord, name: string) {
    return this.#write("deleteSubscription", [topic, name]);
  }

  insertMessages(topic: core.TopicRecord, shard: number, rows: readonly core.LogMessage[]) {
    return this.#insert(topic, shard, encodeMessages(topic, rows));
  }

  insertRuns(topic: core.TopicRecord, shard: number, runs: readonly IndexedRun[]) {
    return this.#insert(topic, shard, encodeRuns(topic, runs));
  }

  #insert(topic: core.TopicRecord, shard: number, e: EncodedInsert) {
    const transfer: ArrayBuffer[] = [];
    const sent = sendable(e, transfer);
    return this.#write("insertEncoded", [topic, shard, sent.rows, sent.runs], transfer);
  }

  readMessages(topic: core.TopicRecord, fromSeq: number, toSeq: number) {
    return this.#reader.readMessages(topic, fromSeq, toSeq);
  }

  readRuns(topic: core.TopicRecord, fromSeq: number, toSeq: number) {
    return this.#reader.readRuns(topic, fromSeq, toSeq);
  }

  readIds(topic: core.TopicRecord, fromSeq: number, toSeq: number) {
    return this.#reader.readIds(topic, fromSeq, toSeq);
  }

  firstSeq(topic: core.TopicRecord) {
    return this.#reader.firstSeq(topic);
  }

  averageRowBytes(topic: core.TopicRecord, sample: number) {
    return this.#reader.averageRowBytes(topic, sample);
  }

  deleteMessagesThrough(topic: core.TopicRecord, throughSeq: number, limit: number) {
    return this.#write("deleteMessagesThrough", [topic, throughSeq, limit]);
  }

  recoverTail(topic: core.TopicRecord, watermark: number) {
    return this.#write("recoverTail", [topic, watermark]);
  }

  scheduleMessages(topic: core.TopicRecord, entries: readonly { dueAt: number; message: core.NewMessage }[]) {
    return this.#write("scheduleMessages", [topic, entries]);
  }

  dueMessages(topic: core.TopicRecord, now: number, limit: number) {
    return this.#reader.dueMessages(topic, now, limit);
  }

  scheduledIds(topic: core.TopicRecord, afterId: number, limit: number) {
    return this.#reader.scheduledIds(topic, afterId, limit);
  }

  deleteScheduled(topic: core.TopicRecord, ids: readonly number[]) {
    return this.#write("deleteScheduled", [topic, ids]);
  }

  scheduleSummary(topic: core.TopicRecord) {
    return this.#reader.scheduleSummary(topic);
  }

  lowestPointer(topic: core.TopicRecord) {
    return this.#reader.lowestPointer(topic);
  }

  loadPointer(topic: core.TopicRecord, subscription: string) {
    return this.#reader.loadPointer(topic, subscription);
  }

  savePointers(topic: core.TopicRecord, pointers: readonly core.PointerRecord[]) {
    return this.#write("savePointers", [topic, pointers]);
  }

  claimTopic(topic: core.TopicRecord) {
    return this.#reader.claimTopic(topic);
  }

  ownership() {
    return this.#reader.ownership();
  }

  outOfSpace(_topic: core.TopicRecord): core.NerveBusError | undefined {
    return this.#space.refusal();
  }

  spaceState(): core.SpaceState[] {
    return [this.#space.state()];
  }

  /** Healthy while both the reader answers and the writer thread runs. */
  async ping(): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed;
    await this.#reader.ping();
  }

  /** Commits every write issued before it, then ends the writer thread and closes the files. */
  async close(): Promise<void> {
    try {
      if (this.#failed === undefined) {
        const exited = new Promise((resolve) => this.#worker.once("exit", resolve));
        await this.#write("close", []);
        this.#closed = true;
        await exited;
      }
    } finally {
      this.#closed = true;
      this.#space.close();
      await this.#worker.terminate();
      await this.#reader.close();
      this.#lock.close();
    }
  }
}
