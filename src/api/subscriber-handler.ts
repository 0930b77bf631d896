import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import {
  AckResultsSchema,
  HeartbeatSchema,
  type ReceiveRequest,
  type ReceiveResponse,
  ReceiveResponseSchema,
  type Subscribe,
  SubscribedSchema,
  type Window as WireWindow,
} from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import {
  type Attachment,
  type Broker,
  type ConsumerSink,
  checkAckDeadline,
  checkDelay,
  type Delivered,
  type Delivery,
  invalidArgument,
  monotonicNow,
  NerveBusError,
  type Window,
} from "../core/index.js";
import { ackSeqNumbers, encodeDeliveries, malformedReason } from "../wire/index.js";
import { type Caller, type CallGuard, principalKey } from "./call-guard.js";
import { durationField } from "./duration-field.js";
import { preEncoded } from "./grpc-adapter.js";
import { toStartPosition } from "./start-position.js";
import { toGrpcStatus } from "./status.js";
import type { StreamBuffers } from "./stream-buffers.js";

type ReceiveCall = grpc.ServerDuplexStream<ReceiveRequest, ReceiveResponse>;

export interface ReceiveOptions {
  /** Idle time after which a stream gets a heartbeat. */
  readonly heartbeatMs: number;
  /** Authenticates each stream as it opens and authorizes its subscribe. */
  readonly guard: CallGuard;
  /** What all streams together may hold for their readers. */
  readonly buffers: StreamBuffers;
}

/** Open Receive streams, so shutdown can end each with UNAVAILABLE. */
export class ReceiveSessions {
  readonly #open = new Set<ReceiveSession>();

  constructor(
    private readonly broker: Broker,
    private readonly options: ReceiveOptions,
  ) {}

  get size(): number {
    return this.#open.size;
  }

  handler(): grpc.handleBidiStreamingCall<ReceiveRequest, ReceiveResponse> {
    return (call) => {
      // Who the stream belongs to is settled once, as it opens: a policy reloaded later applies
      // to new streams, and an open one keeps going.
      let caller: Caller;
      let leave: () => void;
      try {
        caller = this.options.guard.grpcCaller("Receive", call);
        leave = this.options.guard.enter(caller, true);
      } catch (err) {
        call.emit("error", toGrpcStatus(err));
        return;
      }
      const session = new ReceiveSession(this.broker, call, this.options, caller, () => {
        leave();
        this.#open.delete(session);
      });
      this.#open.add(session);
      session.start();
    };
  }

  /** Ends every stream with UNAVAILABLE (shutdown); their unacked messages stay unacked. */
  closeAll(reason: string): void {
    for (const s of [...this.#open]) s.fail(new NerveBusError("unavailable", reason));
  }
}

function toWindow(field: string, w: WireWindow | undefined): Window {
  if (w === undefined) throw invalidArgument(field, "is required (max_messages ≥ 1)");
  // The proto sets no maximum, and clients pass "as many as you like" as 2^63 - 1: past 2^53
  // bytes is more than any broker holds, so no bound in practice (it was INVALID_ARGUMENT).
  const maxBytes =
    w.maxBytes > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(w.maxBytes);
  return { maxMessages: w.maxMessages, maxBytes };
}

function deadlineMs(field: string, d: { seconds: bigint; nanos: number } | undefined): number | undefined {
  if (d === undefined) return undefined;
  return checkAckDeadline(field, durationField(field, d));
}

function toSeqs(seqs: readonly bigint[]): number[] {
  return seqs.map((s) => Number(s));
}

/** Bytes of deliveries a stream may have waiting for the transport before it counts as congested. */
const SEND_BUFFER_BYTES = 1 << 20;
/** Answers waiting for the transport past which a stream's requests are not read any more. */
const READ_PAUSE_BYTES = 4 << 20;
/** Ack confirmations waiting for a state write past which a stream's requests are not read. */
const MAX_UNCONFIRMED = 100_000;
/** Requests read and waiting to be handled past which a stream's requests are not read. */
const MAX_QUEUED_REQUESTS = 16;
/** What one ack confirmation waiting for a state write holds (a seq in an array and its answer). */
const CONFIRM_BYTES = 16;

/**
 * One Receive stream. Requests are handled strictly in order; the first attaches the stream to
 * its subscription. Deliveries respect HTTP/2 flow control: when a write reports a full
 * buffer, the subscription stops sending to this stream until it drains.
 */
class ReceiveSession implements ConsumerSink {
  #attachment: Attachment | undefined;
  #chain: Promise<void> = Promise.resolve();
  #ended = false;
  #lastWrite = monotonicNow();
  /** Bytes of deliveries handed to grpc-js and not yet written to the transport. */
  #unsent = 0;
  /** Whether this stream told its subscription it is congested by #unsent. */
  #held = false;
  /** Whether this stream's requests are not read until its answers go out. */
  #readPaused = false;
  /** Requests read and not handled yet. */
  #queued = 0;
  /** Bytes of ack confirmations waiting for a state write, as counted in the shared buffers. */
  #confirmBytes = 0;
  /** Whether this stream's bytes were taken out of the shared buffers (it ended). */
  #released = false;
  /** Called by the shared buffers once they have room again. */
  readonly #wake = () => this.#roomAgain();
  /** Called by the shared buffers when they go over their bound: nothing more is sent. */
  readonly #hold = () => {
    if (this.#ended) return;
    this.#held = true;
    if (this.#attachment) this.#attachment.consumer.congested = true;
    this.options.buffers.wait(this.caller.peer, this.#wake);
  };
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly broker: Broker,
    private readonly call: ReceiveCall,
    private readonly options: ReceiveOptions,
    private readonly caller: Caller,
    private readonly onClose: () => void,
  ) {}

  start(): void {
    this.call.on("data", (req: ReceiveRequest) => {
      // Requests are handled one after another; those read meanwhile wait here. A client that
      // sends faster than they are handled is not read until the queue is short again.
      if (++this.#queued > MAX_QUEUED_REQUESTS) this.#pauseReading();
      this.#chain = this.#chain
        .then(() => this.#handle(req))
        .catch((err: unknown) => this.fail(err))
        .finally(() => {
          this.#queued--;
          this.#maybeResumeReading();
        });
    });
    // The client half-closed: nothing more will be acked on this stream, so end it.
    this.call.on("end", () => {
      this.#chain = this.#chain.then(() => this.#finish()).catch((err: unknown) => this.fail(err));
    });
    this.call.on("cancelled", () => this.#cleanup());
    this.call.on("close", () => this.#cleanup());
    this.call.on("drain", () => {
      // Held by a bound of its own (see send): resumed when that has room, not at every drain.
      if (this.#attachment && !this.#held) this.#attachment.subscription.resume(this.#attachment.consumer);
    });
    this.call.on("error", () => this.#cleanup());
  }

  send(deliveries: readonly Delivered[]): boolean {
    return this.sendSpans(deliveries);
  }

  sendSpans(deliveries: readonly Delivery[]): boolean {
    if (this.#ended) return false;
    const bytes = encodeDeliveries(deliveries);
    // grpc-js queues up to 16 responses per stream before write() says it is full, and a
    // response holds up to ~1 MiB of deliveries: a client that does not read would make the
    // broker hold ~16 MiB per stream (100 streams on one connection ≈ 2 GiB). The stream is
    // congested once SEND_BUFFER_BYTES wait for the transport, and resumes when they went out.
    const size = bytes.byteLength;
    this.#count(size);
    const open = this.#write(preEncoded(ReceiveResponseSchema, bytes), () => this.#sent(size));
    if (this.#unsent > SEND_BUFFER_BYTES || this.#sharedFull()) {
      this.#held = true;
      return false;
    }
    return open;
  }

  ackResults(acked: readonly number[], alreadyAcked: readonly number[], ignored: readonly number[]): void {
    // Counted like deliveries: a client that acks with confirmations and never reads them would
    // otherwise make them pile up. Past the bound this stream's requests are not read any more
    // (HTTP/2 flow control then stops the client) until its answers went out.
    const size = 16 + 10 * (acked.length + alreadyAcked.length + ignored.length);
    this.#count(size);
    this.#write(
      create(ReceiveResponseSchema, {
        ackResults: create(AckResultsSchema, {
          ackedSeqs: acked.map((s) => BigInt(s)),
          alreadyAckedSeqs: alreadyAcked.map((s) => BigInt(s)),
          ignoredSeqs: ignored.map((s) => BigInt(s)),
        }),
      }),
      () => this.#sent(size),
    );
    // These confirmations left the state write's queue.
    this.#countConfirmsWaiting();
    if (this.#unsent > READ_PAUSE_BYTES || this.#sharedFull()) this.#pauseReading();
  }

  /** `size` more bytes of answers handed to grpc-js. */
  #count(size: number): void {
    this.#unsent += size;
    if (!this.#released) this.options.buffers.resize(this.caller.peer, size);
  }

  /** Re-counts the confirmations waiting for a state write in the shared buffers. */
  #countConfirmsWaiting(): void {
    const a = this.#attachment;
    if (a === undefined || !a.consumer.confirmAcks || this.#released) return;
    const bytes = a.subscription.unconfirmed(a.consumer) * CONFIRM_BYTES;
    this.options.buffers.resize(this.caller.peer, bytes - this.#confirmBytes);
    this.#confirmBytes = bytes;
  }

  /** Whether this connection's streams hold too much; if so, this one is called back once they don't. */
  #sharedFull(): boolean {
    if (!this.options.buffers.full(this.caller.peer)) return false;
    this.options.buffers.wait(this.caller.peer, this.#wake);
    return true;
  }

  /** The shared buffers have room again: resume what waited for it. */
  #roomAgain(): void {
    if (this.#ended) return;
    if (this.#held && this.#unsent <= SEND_BUFFER_BYTES / 2) {
      this.#held = false;
      if (this.#attachment) this.#attachment.subscription.resume(this.#attachment.consumer);
    }
    this.#maybeResumeReading();
  }

  /** Stops reading this stream's requests until its answers went out (see #sent). */
  #pauseReading(): void {
    if (this.#readPaused) return;
    this.#readPaused = true;
    this.call.pause();
  }

  /** `size` bytes of answers went to the transport: resume what waited for room. */
  #sent(size: number): void {
    this.#unsent -= size;
    if (!this.#released) this.options.buffers.resize(this.caller.peer, -size);
    if (this.#held && this.#unsent <= SEND_BUFFER_BYTES / 2 && !this.#sharedFull()) {
      this.#held = false;
      if (this.#attachment && !this.#ended) this.#attachment.subscription.resume(this.#attachment.consumer);
    }
    this.#maybeResumeReading();
  }

  /** Reads requests again once every reason to pause is gone. */
  #maybeResumeReading(): void {
    if (!this.#readPaused || this.#ended) return;
    if (this.#unsent > SEND_BUFFER_BYTES / 2 || this.#queued > MAX_QUEUED_REQUESTS / 2) return;
    if (this.#sharedFull()) return;
    const a = this.#attachment;
    if (a?.consumer.confirmAcks && a.subscription.unconfirmed(a.consumer) > MAX_UNCONFIRMED) return;
    this.#readPaused = false;
    this.call.resume();
  }

  /** Ends the stream with the error's status. */
  fail(err: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#detach();
    this.call.emit("error", toGrpcStatus(err));
  }

  async #handle(req: ReceiveRequest): Promise<void> {
    if (this.#ended) return;
    const bad = malformedReason(req);
    if (bad !== undefined) throw invalidArgument("request", `is not a valid ReceiveRequest (${bad})`);
    let attachment = this.#attachment;
    if (attachment === undefined) {
      if (req.subscribe === undefined) {
        throw new NerveBusError(
          "failed_precondition",
          "subscribe: the first request of a Receive stream must carry subscribe",
        );
      }
      attachment = await this.#subscribe(req.subscribe);
      if (attachment === undefined) return;
    } else if (req.subscribe !== undefined) {
      throw new NerveBusError(
        "failed_precondition",
        "subscribe: only the first request of a stream may carry subscribe",
      );
    }
    const { subscription, consumer } = attachment;
    const acks = ackSeqNumbers(req);
    if (acks.length > 0) {
      subscription.ack(consumer, acks);
      // Confirmations wait for the next state write; a client acking the same seqs over and over
      // would pile them up meanwhile (1 GB in a test): past the bound (its own, or all streams'
      // together) its requests are not read until they went out.
      if (consumer.confirmAcks) {
        this.#countConfirmsWaiting();
        if (subscription.unconfirmed(consumer) > MAX_UNCONFIRMED || this.#sharedFull()) this.#pauseReading();
      }
    }
    for (let i = 0; i < req.nacks.length; i++) {
      const n = req.nacks[i]!;
      let delay: number | undefined;
      if (n.delay !== undefined)
        delay = checkDelay(`nacks[${i}].delay`, durationField(`nacks[${i}].delay`, n.delay));
      subscription.nack(consumer, Number(n.seq), delay);
    }
    for (let i = 0; i < req.extendDeadlines.length; i++) {
      const e = req.extendDeadlines[i]!;
      const ms = deadlineMs(`extend_deadlines[${i}].deadline`, e.deadline);
      if (ms === undefined) throw invalidArgument(`extend_deadlines[${i}].deadline`, "is required");
      subscription.extend(consumer, toSeqs(e.seqs), ms);
    }
    if (req.terminateSeqs.length > 0) subscription.terminate(consumer, toSeqs(req.terminateSeqs));
    if (req.window !== undefined) {
      const window = toWindow("window", req.window);
      this.broker.checkWindow("window", window);
      subscription.setWindow(consumer, window);
    }
  }

  async #subscribe(s: Subscribe): Promise<Attachment | undefined> {
    this.options.guard.require("Receive", this.caller, [
      { action: "subscribe", topic: s.topic, subscription: s.subscription },
    ]);
    const window = toWindow("subscribe.window", s.window);
    const ackDeadlineMs = deadlineMs("subscribe.ack_deadline", s.ackDeadline);
    // Bytes, as the proto says and as every other limit counts (not UTF-16 units).
    const nameBytes = Buffer.byteLength(s.consumerName);
    if (nameBytes > 128)
      throw invalidArgument("subscribe.consumer_name", `is ${nameBytes} bytes; the limit is 128`);
    const attachment = await this.broker.subscribe(
      s.topic,
      s.subscription,
      {
        window,
        ackDeadlineMs,
        start: toStartPosition(s.start, "subscribe."),
        confirmAcks: s.confirmAcks,
        consumerName: s.consumerName || this.call.getPeer(),
        // While this connection's streams hold too much, a new one starts held: its first
        // answer would add to what the slow reader already holds.
        congested: this.#sharedFull(),
        by: principalKey(this.caller),
      },
      this,
    );

    if (this.#ended) {
      attachment.subscription.detach(attachment.consumer);
      return undefined;
    }
    this.#attachment = attachment;
    this.options.buffers.onFull(this.caller.peer, this.#hold);
    if (attachment.consumer.congested) {
      // Started held: wait for room, or go now if there is room already.
      if (this.#sharedFull()) this.#held = true;
      else attachment.subscription.resume(attachment.consumer);
    }
    this.#write(
      create(ReceiveResponseSchema, {
        subscribed: create(SubscribedSchema, {
          created: attachment.created,
          floor: BigInt(attachment.subscription.floor),
          lastSeq: BigInt(attachment.subscription.topic.watermark),
          ackDeadline: durationFromMs(attachment.ackDeadlineMs),
        }),
      }),
    );
    this.#heartbeat = setInterval(
      () => this.#beat(),
      Math.max(100, Math.floor(this.options.heartbeatMs / 2)),
    );
    return attachment;
  }

  #beat(): void {
    const a = this.#attachment;
    if (a === undefined || this.#ended || monotonicNow() - this.#lastWrite < this.options.heartbeatMs) return;
    const stats = a.subscription.stats();
    this.#write(
      create(ReceiveResponseSchema, {
        heartbeat: create(HeartbeatSchema, {
          lastSeq: BigInt(a.subscription.topic.watermark),
          floor: BigInt(stats.floor),
          backlog: BigInt(stats.backlog),
          inFlight: a.consumer.inFlight,
        }),
      }),
    );
  }

  #write(response: ReceiveResponse, written?: () => void): boolean {
    if (this.#ended) return false;
    this.#lastWrite = monotonicNow();
    return written === undefined ? this.call.write(response) : this.call.write(response, written);
  }

  /** The client half-closed: confirm its last acks if it asked for that, then end OK. */
  async #finish(): Promise<void> {
    if (this.#ended) return;
    const a = this.#attachment;
    if (a?.consumer.confirmAcks) await this.broker.flushState(a.subscription.topic.record.name);
    if (this.#ended) return;
    this.#ended = true;
    this.#detach();
    this.call.end();
  }

  #cleanup(): void {
    this.#ended = true;
    this.#detach();
  }

  #detach(): void {
    clearInterval(this.#heartbeat);
    if (!this.#released) {
      // Answers never written once the stream is gone: what it held is free for the others.
      this.#released = true;
      this.options.buffers.cancel(this.caller.peer, this.#wake);
      this.options.buffers.offFull(this.caller.peer, this.#hold);
      this.options.buffers.resize(this.caller.peer, -(this.#unsent + this.#confirmBytes));
      this.#confirmBytes = 0;
    }
    const a = this.#attachment;
    if (a !== undefined && !a.consumer.detached) a.subscription.detach(a.consumer);
    this.onClose();
  }
}
