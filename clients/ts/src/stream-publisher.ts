import { create } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import { type BackoffOptions, backoffDelay, type ResolvedBackoff, resolveBackoff } from "./backoff.js";
import { fromUint64, invalidArgument } from "./conversions.js";
import {
  DEFAULT_RETRYABLE_CODES,
  errorFromStatus,
  NerveBusError,
  StatusCode,
  toNerveBusError,
} from "./errors.js";
import type { Message } from "./gen/nervebus/v1/message_pb.js";
import {
  MessageResult_Outcome,
  type PublisherService,
  PublishOpenSchema,
  type PublishRequest,
  PublishRequestSchema,
  type PublishResponse,
} from "./gen/nervebus/v1/publisher_pb.js";
import type { ServiceClient } from "./grpc-adapter.js";
import {
  internalOutcomeUnknown,
  type PublishMessage,
  type PublishOutcome,
  type PublishResult,
  toWireMessage,
} from "./publisher.js";
import type { Route } from "./route.js";

/** Settings of a streaming publisher. */
export interface StreamPublisherOptions {
  /**
   * Credit to ask for: the most messages sent and not yet confirmed. 0 (default) takes the
   * broker's largest (its max pack count).
   */
  readonly maxMessages?: number;
  /** Likewise in bytes (data, attributes, ordering key, message id). 0 (default): the broker's largest. */
  readonly maxBytes?: number;
  /**
   * Fire and forget (for ephemeral topics): the broker sends no confirms; send() resolves with
   * no results once the batch is handed to the stream. Nothing is sent again after a break.
   */
  readonly noConfirms?: boolean;
  /** Give messages without a messageId a random UUID, so a batch sent again after a break is deduplicated. Default true. */
  readonly autoMessageId?: boolean;
  /** Waits between attempts to reopen a broken stream. Default 100 ms growing ×2 to 5 s, 50 % jitter. */
  readonly reconnectBackoff?: BackoffOptions;
  /**
   * How long a broken stream is reopened, in ms from the break, before the batches not
   * confirmed fail with its error. Default 60 000; 0 never reopens.
   */
  readonly reconnectDeadlineMs?: number;
  /**
   * Stream errors that reopen the stream; others fail it. Default UNAVAILABLE, RESOURCE_EXHAUSTED
   * (an INTERNAL counts as UNAVAILABLE).
   */
  readonly retryableCodes?: readonly StatusCode[];
}

const DEFAULT_BACKOFF: ResolvedBackoff = { initialMs: 100, maxMs: 5000, multiplier: 2, jitter: 0.5 };

const OUTCOMES: Record<number, PublishOutcome> = {
  [MessageResult_Outcome.APPENDED]: "appended",
  [MessageResult_Outcome.DUPLICATE]: "duplicate",
  [MessageResult_Outcome.SCHEDULED]: "scheduled",
};

/** One send(): its messages as sent (ids included, so a resend is deduplicated) and its caller. */
interface Batch {
  readonly wire: Message[];
  readonly bytes: number;
  readonly resolve: (r: PublishResult[]) => void;
  readonly reject: (err: NerveBusError) => void;
}

type PublisherClient = ServiceClient<(typeof PublisherService)["method"]>;

function utf8Length(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/**
 * A Publish stream on one topic, for high-rate producers: each send() is one batch, appended
 * after the stream's previous batches (consecutive seqs within it) and confirmed once durable,
 * with the same per-message results as SendPack. The broker's credit is the flow control:
 * batches go out in call order as the credit allows, so a producer that awaits each send() (or
 * keeps a few in flight) never goes over it.
 *
 * A stream that breaks with a retryable status (a broker restart: UNAVAILABLE) is reopened with
 * backoff, and every batch not confirmed is sent again, in order, with its message ids: the
 * broker's deduplication makes a batch that was appended before the break count once (its
 * results then say "duplicate", with the seqs of the first append). A stream that ends INTERNAL
 * (the connection reset under it) counts as UNAVAILABLE: its batches' outcome is unknown. Only a
 * non-retryable status, or no reopened stream within `reconnectDeadlineMs`, rejects the
 * unconfirmed batches.
 */
export class StreamPublisher {
  readonly #route: Route<PublisherClient>;
  readonly #noConfirms: boolean;
  readonly #autoMessageId: boolean;
  readonly #backoff: ResolvedBackoff;
  readonly #deadlineMs: number;
  readonly #retryable: ReadonlySet<StatusCode>;
  readonly #onClose: () => void;
  readonly #open: PublishRequest;
  #call: grpc.ClientDuplexStream<PublishRequest, PublishResponse> | undefined;
  /** Whether the broker opened the current call (its credit is known). */
  #callOpen = false;
  /** Whether the current call was half-closed (close(), with nothing left to send). */
  #callEnded = false;
  #credit = { messages: 0, bytes: 0 };
  #granted = { messages: 0, bytes: 0 };
  /** Batches not written on the current call yet, in order. */
  #unsent: Batch[] = [];
  /** Batches written on the current call, waiting for their confirm, in order. */
  #sent: Batch[] = [];
  /** When the stream broke, while it has not been reopened since; undefined while it is up. */
  #brokenSince: number | undefined;
  #attempt = 0;
  #reopenTimer: NodeJS.Timeout | undefined;
  #failure: NerveBusError | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;
  #ended!: () => void;
  readonly #end = new Promise<void>((resolve) => {
    this.#ended = resolve;
  });
  #opened!: () => void;
  readonly #ready: Promise<void>;

  /** @internal Use NerveBusClient.streamPublisher(). */
  constructor(
    route: Route<PublisherClient>,
    readonly topic: string,
    options: StreamPublisherOptions = {},
    onClose: () => void = () => {},
  ) {
    this.#route = route;
    this.#noConfirms = options.noConfirms ?? false;
    this.#autoMessageId = options.autoMessageId ?? true;
    this.#backoff = resolveBackoff(options.reconnectBackoff, DEFAULT_BACKOFF);
    this.#deadlineMs = options.reconnectDeadlineMs ?? 60_000;
    if (!(this.#deadlineMs >= 0))
      throw new RangeError(`reconnectDeadlineMs must be ≥ 0, got ${this.#deadlineMs}`);
    this.#retryable = new Set(options.retryableCodes ?? DEFAULT_RETRYABLE_CODES);
    this.#onClose = onClose;
    const maxMessages = options.maxMessages ?? 0;
    const maxBytes = options.maxBytes ?? 0;
    if (!Number.isInteger(maxMessages) || maxMessages < 0 || maxMessages > 0xffff_ffff)
      throw new RangeError(`maxMessages must be an integer ≥ 0, got ${maxMessages}`);
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0)
      throw new RangeError(`maxBytes must be an integer ≥ 0, got ${maxBytes}`);
    this.#open = create(PublishRequestSchema, {
      open: create(PublishOpenSchema, {
        topic,
        maxMessages,
        maxBytes: BigInt(maxBytes),
        noConfirms: this.#noConfirms,
      }),
    });
    this.#ready = new Promise<void>((resolve, reject) => {
      this.#opened = resolve;
      this.#end.then(() => reject(this.#failure ?? new NerveBusError(StatusCode.CANCELLED, "stream ended")));
    });
    this.#ready.catch(() => {});
    this.#connect();
  }

  /** Resolves once the broker opened the stream (the credit is known); rejects if it refused. */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /** The credit the broker granted (zero until ready). */
  get granted(): { readonly messages: number; readonly bytes: number } {
    return this.#granted;
  }

  /**
   * Sends `messages` as one batch once the credit allows, and resolves with one result per
   * message once the batch is durable (at once, with none, in noConfirms mode). Rejects with
   * INVALID_ARGUMENT for a batch that can never fit the credit, and with the stream's error
   * once it failed for good (see the class).
   */
  async send(messages: readonly PublishMessage[]): Promise<PublishResult[]> {
    if (messages.length === 0) throw invalidArgument("messages", "a batch needs at least one message");
    if (this.#closed !== undefined)
      throw new NerveBusError(StatusCode.FAILED_PRECONDITION, "stream publisher is closed");
    const wire = messages.map((m) => toWireMessage(m, this.#autoMessageId));
    let bytes = 0;
    for (const m of wire) {
      bytes += m.data.byteLength + utf8Length(m.orderingKey) + utf8Length(m.messageId);
      for (const [k, v] of Object.entries(m.attributes)) bytes += utf8Length(k) + utf8Length(v);
    }
    await this.#ready;
    if (this.#failure !== undefined) throw this.#failure;
    this.#checkFits(wire.length, bytes);
    return new Promise<PublishResult[]>((resolve, reject) => {
      this.#unsent.push({ wire, bytes, resolve, reject });
      this.#pump();
    });
  }

  /**
   * Half-closes the stream once every batch is sent and waits until each is confirmed and the
   * broker ended the stream (reopening it meanwhile if it breaks); rejects with the stream's
   * error, if it failed. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#onClose();
      this.#closing = true;
      if (this.#call === undefined && this.#unsent.length === 0) this.#finish();
      else this.#pump();
      await this.#end;
      if (this.#failure !== undefined) throw this.#failure;
    })();
    return this.#closed;
  }

  #checkFits(messages: number, bytes: number): void {
    if (messages > this.#granted.messages || bytes > this.#granted.bytes)
      throw invalidArgument(
        "messages",
        `a batch of ${messages} messages and ${bytes} bytes never fits the credit of ${this.#granted.messages} messages and ${this.#granted.bytes} bytes`,
      );
  }

  /** Opens a Publish stream; what was not confirmed on the last one goes out once it is open. */
  #connect(): void {
    this.#reopenTimer = undefined;
    const call = this.#route.pick(this.topic).publish();
    this.#call = call;
    this.#callOpen = false;
    this.#callEnded = false;
    let error: NerveBusError | undefined;
    call.on("data", (r: PublishResponse) => this.#onResponse(call, r));
    call.on("error", (err) => {
      error = toNerveBusError(err);
    });
    call.on("status", (s: grpc.StatusObject) =>
      this.#onEnd(call, s.code === StatusCode.OK ? undefined : (error ?? errorFromStatus(s))),
    );
    call.write(this.#open);
  }

  #onResponse(call: grpc.ClientDuplexStream<PublishRequest, PublishResponse>, r: PublishResponse): void {
    if (call !== this.#call) return;
    if (r.opened !== undefined) {
      this.#granted = { messages: r.opened.messages, bytes: Number(r.opened.bytes) };
      this.#credit = { ...this.#granted };
      this.#callOpen = true;
      this.#brokenSince = undefined;
      this.#attempt = 0;
      // A reopened stream may grant less (the broker's limits changed): batches that never fit it fail.
      this.#unsent = this.#unsent.filter((b) => {
        try {
          this.#checkFits(b.wire.length, b.bytes);
          return true;
        } catch (err) {
          b.reject(err as NerveBusError);
          return false;
        }
      });
      this.#opened();
    }
    for (const c of r.confirms) {
      const sent = this.#sent.shift();
      if (sent === undefined) continue;
      const results = c.result?.results ?? [];
      sent.resolve(
        results.map((x, i) => ({
          seq: fromUint64(x.seq),
          traceId: x.traceId,
          outcome: OUTCOMES[x.outcome] ?? "appended",
          messageId: sent.wire[i]?.messageId ?? "",
        })),
      );
    }
    if (r.credit !== undefined) {
      this.#credit.messages += r.credit.messages;
      this.#credit.bytes += Number(r.credit.bytes);
    }
    this.#pump();
  }

  /** Writes the batches that fit the credit left, in order; half-closes once closing and all are out. */
  #pump(): void {
    const call = this.#call;
    if (call === undefined || !this.#callOpen || this.#callEnded) return;
    while (this.#unsent.length > 0) {
      const b = this.#unsent[0]!;
      if (this.#credit.messages < b.wire.length || this.#credit.bytes < b.bytes) break;
      this.#unsent.shift();
      this.#credit.messages -= b.wire.length;
      this.#credit.bytes -= b.bytes;
      call.write(create(PublishRequestSchema, { messages: b.wire }));
      if (this.#noConfirms) b.resolve([]);
      else this.#sent.push(b);
    }
    if (this.#closing && this.#unsent.length === 0) {
      this.#callEnded = true;
      call.end();
    }
  }

  /** The current call ended: done, reopened after a backoff, or failed for good. */
  #onEnd(
    call: grpc.ClientDuplexStream<PublishRequest, PublishResponse>,
    err: NerveBusError | undefined,
  ): void {
    if (call !== this.#call) return;
    this.#call = undefined;
    const left = this.#sent.length + this.#unsent.length;
    if (err === undefined) {
      if (left === 0 && this.#closing) {
        this.#finish();
        return;
      }
      // Ended by the broker with batches outstanding: their outcome is unknown.
      err = new NerveBusError(StatusCode.UNAVAILABLE, "stream ended before the confirm");
    }
    this.#route.failed(this.topic, err);
    err = internalOutcomeUnknown(err);
    const now = performance.now();
    this.#brokenSince ??= now;
    const wait = backoffDelay(this.#backoff, this.#attempt++);
    if (this.#closing && left === 0) {
      this.#finish(); // closed with everything confirmed: how the stream ended no longer matters
      return;
    }
    if (!this.#retryable.has(err.code) || now + wait - this.#brokenSince > this.#deadlineMs) {
      this.#fail(err);
      return;
    }
    // Sent again in order, ahead of the batches that were not out yet.
    this.#unsent = [...this.#sent, ...this.#unsent];
    this.#sent = [];
    this.#reopenTimer = setTimeout(() => this.#connect(), wait);
  }

  #fail(err: NerveBusError): void {
    this.#failure ??= err;
    for (const b of this.#sent.splice(0)) b.reject(this.#failure);
    for (const b of this.#unsent.splice(0)) b.reject(this.#failure);
    this.#finish();
  }

  #finish(): void {
    clearTimeout(this.#reopenTimer);
    if (this.#call !== undefined) this.#call.cancel();
    this.#call = undefined;
    this.#ended();
  }
}
