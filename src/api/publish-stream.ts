import type * as grpc from "@grpc/grpc-js";
import {
  type PublishRequest,
  type PublishResponse,
  PublishResponseSchema,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import {
  APPENDED,
  type Broker,
  checkPack,
  invalidArgument,
  NerveBusError,
  type PublishResult,
  validateName,
} from "../core/index.js";
import { endPublishSpan, type Telemetry } from "../telemetry/index.js";
import {
  type ConfirmFields,
  type CreditFields,
  encodePublishResponse,
  encodeSendPackResponse,
  joinPacks,
  type Pack,
  type PublishRequestBytes,
} from "../wire/index.js";
import type { Caller, CallGuard } from "./call-guard.js";
import { preEncoded } from "./grpc-adapter.js";
import { type PublishQuota, quotaHolder } from "./publish-quota.js";
import { callDeadline, firstAttributes, resolvePack } from "./publisher-handler.js";
import { toGrpcStatus } from "./status.js";

/** Its requests are what readPublishRequest makes of the bytes, not protobuf-es objects. */
type PublishCall = grpc.ServerDuplexStream<PublishRequestBytes, PublishResponse>;

export interface PublishStreamOptions {
  readonly guard: CallGuard;
  readonly quota: PublishQuota;
  readonly telemetry: Telemetry;
}

/** One batch read from the stream, validated, waiting for (or in) its append. */
interface Batch {
  /** 1 for the stream's first batch, and so on. */
  readonly no: number;
  readonly pack: Pack;
  /** As messageBytes counts them: the credit the batch uses. */
  readonly bytes: number;
}

/** Open Publish streams, so shutdown can end each once its append in progress is confirmed. */
export class PublishStreams {
  readonly #open = new Set<PublishStream>();

  constructor(
    private readonly broker: Broker,
    private readonly options: PublishStreamOptions,
  ) {}

  get size(): number {
    return this.#open.size;
  }

  /** PublisherService.Publish: needs the publish right on the stream's topic. */
  handler(): grpc.handleBidiStreamingCall<PublishRequest, PublishResponse> {
    return (raw) => {
      const call = raw as unknown as PublishCall;
      const stream = new PublishStream(this.broker, call, this.options, () => this.#open.delete(stream));
      this.#open.add(stream);
      stream.start();
    };
  }

  /**
   * Stops reading every stream; each ends with UNAVAILABLE once the append it has in progress is
   * confirmed (batches read and not yet appended are not: their producers retry them).
   */
  closeAll(reason: string): void {
    for (const s of [...this.#open]) s.close(reason);
  }
}

/**
 * One Publish stream. Batches are validated and charged to the credit as they are read, then
 * appended through Broker.publish exactly as SendPack packs are, one append in progress per
 * stream: the batches read while one is in progress go together into the next (a pack of
 * several batches, within the pack limits because the credit is), so the stream's order is its
 * seq order without the broker having to keep concurrent appends in order, and a fast producer
 * gets large packs. Confirms and returned credit go out once an append is durable.
 */
class PublishStream {
  #topic = "";
  /** The metric attributes of its confirms, and the call's traceparent: the same for every append. */
  #metricAttributes = { topic: "" };
  #metadataParent: string | undefined;
  #caller: Caller | undefined;
  /** Releases the stream's share of the principal's packs in progress. */
  #releaseQuota: (() => void) | undefined;
  #noConfirms = false;
  /** Granted at open; spent by batches read, given back when they are appended. */
  #credit: CreditFields = { messages: 0, bytes: 0 };
  #usedMessages = 0;
  #usedBytes = 0;
  #batches = 0;
  readonly #queue: Batch[] = [];
  #appending = false;
  /** grpc-js's buffer is full: no new append until it drains (a producer that reads no answers stops here). */
  #congested = false;
  /** The client half-closed: end OK once everything read is confirmed. */
  #halfClosed = false;
  /** Shutdown: end with this once the append in progress is confirmed. */
  #closing: string | undefined;
  /** A bad request: end with its error once the batches read before it are confirmed. */
  #refused: unknown;
  #ended = false;

  constructor(
    private readonly broker: Broker,
    private readonly call: PublishCall,
    private readonly options: PublishStreamOptions,
    private readonly onClose: () => void,
  ) {}

  start(): void {
    this.call.on("data", (req: PublishRequestBytes) => {
      if (this.#ended || this.#closing !== undefined || this.#refused !== undefined) return;
      try {
        this.#read(req);
      } catch (err) {
        // What was read before the bad request is appended and confirmed first.
        this.#refused = err;
        this.call.pause();
        this.#next();
      }
    });
    this.call.on("end", () => {
      this.#halfClosed = true;
      this.#next();
    });
    this.call.on("drain", () => {
      this.#congested = false;
      this.#next();
    });
    this.call.on("cancelled", () => this.#cleanup());
    this.call.on("close", () => this.#cleanup());
    this.call.on("error", () => this.#cleanup());
  }

  /** Shutdown: read nothing more, end with UNAVAILABLE once the append in progress is answered. */
  close(reason: string): void {
    if (this.#ended) return;
    this.#closing = reason;
    this.call.pause();
    this.#next();
  }

  #read(req: PublishRequestBytes): void {
    const bad = req.malformed;
    if (bad !== undefined) throw invalidArgument("request", `is not a valid PublishRequest (${bad})`);
    if (this.#caller === undefined) {
      if (req.open === undefined) {
        throw new NerveBusError(
          "failed_precondition",
          "open: the first request of a Publish stream must carry open",
        );
      }
      this.#open(req.open);
      if (req.pack.count === 0) return;
    } else if (req.open !== undefined) {
      throw new NerveBusError(
        "failed_precondition",
        "open: only the first request of a stream may carry open",
      );
    }
    const { pack } = req;
    const no = ++this.#batches;
    const where = `batch ${no}`;
    if (pack.count === 0) throw invalidArgument(`${where}: messages`, "a batch needs at least one message");
    const left = {
      messages: this.#credit.messages - this.#usedMessages,
      bytes: this.#credit.bytes - this.#usedBytes,
    };
    // The message count first: the credit is within the pack limits, so a batch over both
    // gets the error about the credit, which is what the producer must fix.
    if (pack.count > left.messages) throw this.#overCredit(where, pack.count, undefined, left);
    let bytes: number;
    try {
      resolvePack(pack, Date.now());
      bytes = checkPack(pack, this.broker.options);
    } catch (err) {
      throw err instanceof NerveBusError ? new NerveBusError(err.code, `${where}: ${err.message}`) : err;
    }
    if (bytes > left.bytes) throw this.#overCredit(where, pack.count, bytes, left);
    let dataBytes = 0;
    if (this.options.quota.enabled)
      for (let i = 0; i < pack.count; i++) dataBytes += pack.dataEnd[i]! - pack.dataStart[i]!;
    this.options.quota.take(quotaHolder(this.#caller!), pack.count, dataBytes);
    this.#usedMessages += pack.count;
    this.#usedBytes += bytes;
    this.#queue.push({ no, pack, bytes });
    this.#next();
  }

  #overCredit(where: string, messages: number, bytes: number | undefined, left: CreditFields): NerveBusError {
    const size = bytes === undefined ? "" : ` of ${bytes} bytes`;
    return new NerveBusError(
      "resource_exhausted",
      `${where}: has ${messages} messages${size} but the stream's credit left is ${left.messages} messages ` +
        `and ${left.bytes} bytes (of ${this.#credit.messages} and ${this.#credit.bytes}); wait for confirms or credit before sending more`,
    );
  }

  #open(open: NonNullable<PublishRequest["open"]>): void {
    validateName("open.topic", open.topic);
    const caller = this.options.guard.authorize("Publish", this.call, [
      { action: "publish", topic: open.topic },
    ]);
    // The stream holds one pack's worth of credit at most, so it counts as one pack in
    // progress of its principal for as long as it is open.
    // And as a call of its principal on this connection (its share of connections and streams).
    const leave = this.options.guard.enter(caller, true);
    let admitted: () => void;
    try {
      admitted = this.options.quota.admit(quotaHolder(caller), 0, 0);
    } catch (err) {
      leave();
      throw err;
    }
    this.#releaseQuota = () => {
      admitted();
      leave();
    };
    this.#caller = caller;
    this.#topic = open.topic;
    this.#metricAttributes = { topic: open.topic };
    const metadataParent = this.call.metadata.get("traceparent")[0];
    this.#metadataParent = typeof metadataParent === "string" ? metadataParent : undefined;
    this.#noConfirms = open.noConfirms;
    const { maxPackMessages, maxPackBytes } = this.broker.options;
    const askedBytes = open.maxBytes > BigInt(maxPackBytes) ? maxPackBytes : Number(open.maxBytes);
    this.#credit = {
      messages: open.maxMessages === 0 ? maxPackMessages : Math.min(open.maxMessages, maxPackMessages),
      bytes: askedBytes === 0 ? maxPackBytes : askedBytes,
    };
    this.#write(encodePublishResponse(this.#credit, [], undefined));
  }

  /** Starts the next append when none is in progress, or ends the stream when all is done. */
  #next(): void {
    if (this.#ended || this.#appending) return;
    if (this.#closing !== undefined) {
      this.#fail(new NerveBusError("unavailable", this.#closing));
      return;
    }
    if (this.#queue.length === 0) {
      if (this.#refused !== undefined) this.#fail(this.#refused);
      else if (this.#halfClosed) this.#end();
      return;
    }
    if (this.#congested) return;
    const batches = this.#queue.splice(0);
    const pack = joinPacks(batches.map((b) => b.pack));
    // Joined, the batches' payloads are copies the append does not read: their requests can go
    // now rather than at the confirm (the batches are kept for it).
    if (batches.length > 1) for (const b of batches) b.pack.releasePayloads();
    this.#appending = true;
    const started = performance.now();
    const { telemetry } = this.options;
    const span = telemetry.startPublishSpan(this.#topic, pack.count, this.#metadataParent, () =>
      firstAttributes(pack),
    );
    // The call's deadline bounds each append's waits, so a stream with one ends with the
    // broker's status naming the batches rather than its client's DEADLINE_EXCEEDED.
    this.broker.publish(this.#topic, pack, callDeadline(this.call)).then(
      (r) => {
        endPublishSpan(span, r);
        telemetry.metrics.confirmSeconds.record((performance.now() - started) / 1000, this.#metricAttributes);
        this.#appending = false;
        this.#appended(batches, r);
        this.#next();
      },
      (err: unknown) => {
        endPublishSpan(span, err as Error);
        this.#appending = false;
        const e = err instanceof NerveBusError ? err : undefined;
        const which =
          batches.length === 1
            ? `batch ${batches[0]!.no}`
            : `batches ${batches[0]!.no}–${batches.at(-1)!.no}`;
        this.#fail(
          e === undefined
            ? err
            : new NerveBusError(e.code, `${which}: ${e.message}`, { cause: e, retryAfterMs: e.retryAfterMs }),
        );
      },
    );
  }

  /** Confirms `batches` (appended together as `r`) and gives their credit back. */
  #appended(batches: readonly Batch[], r: PublishResult): void {
    let messages = 0;
    let bytes = 0;
    const confirms: ConfirmFields[] = [];
    let at = 0;
    for (const b of batches) {
      messages += b.pack.count;
      bytes += b.bytes;
      if (this.#noConfirms) continue;
      const results = r.results.slice(at, at + b.pack.count);
      at += b.pack.count;
      let first = 0;
      let last = 0;
      for (let i = 0; i < results.count; i++) {
        if (results.kind[i] !== APPENDED) continue;
        if (first === 0) first = results.seq[i]!;
        last = results.seq[i]!;
      }
      confirms.push({ batch: b.no, result: encodeSendPackResponse(first, last, results) });
    }
    this.#usedMessages -= messages;
    this.#usedBytes -= bytes;
    if (!this.#write(encodePublishResponse(undefined, confirms, { messages, bytes }))) this.#congested = true;
  }

  #write(bytes: Buffer): boolean {
    if (this.#ended) return false;
    return this.call.write(preEncoded(PublishResponseSchema, bytes));
  }

  #end(): void {
    this.#ended = true;
    this.#release();
    this.call.end();
  }

  #fail(err: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#release();
    this.call.emit("error", toGrpcStatus(err));
  }

  #cleanup(): void {
    this.#ended = true;
    this.#release();
  }

  #release(): void {
    this.#queue.length = 0;
    this.#releaseQuota?.();
    this.#releaseQuota = undefined;
    this.onClose();
  }
}
