import { Worker } from "node:worker_threads";

/** What the checkpoint thread answers (sqlite-checkpoint-thread.ts). */
export type CheckpointerReply =
  | { readonly kind: "done"; readonly logFrames: number; readonly copiedFrames: number }
  | { readonly kind: "skipped"; readonly message: string }
  | { readonly kind: "failed"; readonly message: string };

/** Bytes committed since the last checkpoint that ask for the next one (about 256 pages). */
const CHECKPOINT_AFTER_BYTES = 1 << 20;
/** A smaller amount is checkpointed once this much time has passed since the last request. */
const CHECKPOINT_AFTER_MS = 250;

/**
 * Checkpoints a SQLite database from a thread of its own (sqlite-checkpoint-thread.ts). The
 * store's connection runs with automatic checkpoints off but for a large backstop: an
 * automatic checkpoint runs inside the commit that crosses the threshold, copying megabytes
 * and fsyncing the database file on the event loop (8–10 ms every few seconds at 10k msg/s on
 * this repository's test machine, every publish and delivery waiting behind it). The store
 * says how much it committed; past a megabyte, or a quarter second after a smaller amount,
 * the thread is asked for a checkpoint, one at a time.
 *
 * A checkpoint that fails is tried again at the next request. If the thread cannot open the
 * database or dies, `onFailure` is called once (the store then checkpoints as SQLite does by
 * default, on its own connection): checkpoints are housekeeping, never a reason to stop.
 */
export class SqliteCheckpointer {
  readonly #worker: Worker;
  #pendingBytes = 0;
  #lastRequest = 0;
  #inFlight = false;
  #failed = false;
  #closing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Checkpoints the thread finished. */
  completed = 0;

  constructor(
    path: string,
    private readonly onFailure: (reason: string) => void,
    script: URL = new URL("./sqlite-checkpoint-thread.js", import.meta.url),
  ) {
    this.#worker = new Worker(script, { workerData: { path } });
    // Housekeeping must not keep a process alive that has nothing else to do.
    this.#worker.unref();
    this.#worker.on("message", (msg: CheckpointerReply) => {
      if (msg.kind === "done" || msg.kind === "skipped") {
        this.#inFlight = false;
        if (msg.kind === "done") this.completed++;
        // What was committed meanwhile is not left in the log until the next write.
        this.#request();
      } else {
        this.#fail(msg.message);
      }
    });
    this.#worker.on("error", (err) => this.#fail(err.message));
    this.#worker.on("exit", (code) => {
      if (this.#closing === undefined) this.#fail(`exited (code ${code})`);
    });
  }

  /** The store committed about `bytes`: asks for a checkpoint when enough has piled up. */
  wrote(bytes: number): void {
    this.#pendingBytes += bytes;
    this.#request();
  }

  /** Asks for a checkpoint now if one is due, or sets a timer for when it will be. */
  #request(): void {
    if (this.#inFlight || this.#failed || this.#closing !== undefined || this.#pendingBytes === 0) return;
    const now = performance.now();
    const wait =
      this.#pendingBytes >= CHECKPOINT_AFTER_BYTES ? 0 : this.#lastRequest + CHECKPOINT_AFTER_MS - now;
    if (wait > 0) {
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined;
        this.#request();
      }, wait).unref();
      return;
    }
    this.#pendingBytes = 0;
    this.#lastRequest = now;
    this.#inFlight = true;
    this.#worker.postMessage("checkpoint");
  }

  /** Stops the thread after the checkpoint it may be running; its connection is closed. */
  close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#closing ??= new Promise<void>((resolve) => {
      // Held open until the thread has closed its connection.
      this.#worker.ref();
      if (this.#failed) {
        void this.#worker.terminate().then(() => resolve());
        return;
      }
      this.#worker.once("exit", () => resolve());
      this.#worker.postMessage("close");
    });
    return this.#closing;
  }

  #fail(reason: string): void {
    if (this.#failed) return;
    this.#failed = true;
    this.onFailure(reason);
  }
}
