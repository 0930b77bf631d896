import { create } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import { fromUint64, invalidArgument } from "./conversions.js";
import { errorFromStatus, NerveBusError, StatusCode, toNerveBusError } from "./errors.js";
import {
  MessageResult_Outcome,
  type PublisherService,
  PublishOpenSchema,
  type PublishRequest,
  PublishRequestSchema,
  type PublishResponse,
} from "./gen/nervebus/v1/publisher_pb.js";
import type { ServiceClient } from "./grpc-adapter.js";
import { type PublishMessage, type PublishOutcome, type PublishResult, toWireMessage } from "./publisher.js";

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
   * no results once the batch is handed to the stream. Errors still end the stream.
   */
  readonly noConfirms?: boolean;
  /** Give messages without a messageId a random UUID, so a retry after a broken stream is deduplicated. Default true. */
  readonly autoMessageId?: boolean;
}

const OUTCOMES: Record<number, PublishOutcome> = {
  [MessageResult_Outcome.APPENDED]: "appended",
  [MessageResult_Outcome.DUPLICATE]: "duplicate",
  [MessageResult_Outcome.SCHEDULED]: "scheduled",
};

interface Sent {
  readonly ids: string[];
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
 * send() waits until the batch fits in the credit left, in call order, so a producer that
 * awaits each send() (or keeps a few in flight) never goes over it. The first error ends the
 * stream: every batch not confirmed yet rejects with it (its outcome is unknown; send it again
 * on a new stream, with the same message ids, to stay idempotent). No reconnects.
 */
export class StreamPublisher {
  readonly #call: grpc.ClientDuplexStream<PublishRequest, PublishResponse>;
  readonly #noConfirms: boolean;
  readonly #autoMessageId: boolean;
  readonly #onClose: () => void;
  #credit = { messages: 0, bytes: 0 };
  #granted = { messages: 0, bytes: 0 };
  #opened = false;
  /** Batches sent, waiting for their confirm, in order. */
  readonly #sent: Sent[] = [];
  /** send() calls waiting for credit, in order. */
  readonly #waiting: (() => void)[] = [];
  #failure: NerveBusError | undefined;
  #closed: Promise<void> | undefined;
  #ended!: () => void;
  readonly #end = new Promise<void>((resolve) => {
    this.#ended = resolve;
  });
  readonly #ready: Promise<void>;

  /** @internal Use NerveBusClient.streamPublisher(). */
  constructor(
    client: PublisherClient,
    readonly topic: string,
    options: StreamPublisherOptions = {},
    onClose: () => void = () => {},
  ) {
    this.#noConfirms = options.noConfirms ?? false;
    this.#autoMessageId = options.autoMessageId ?? true;
    this.#onClose = onClose;
    const maxMessages = options.maxMessages ?? 0;
    const maxBytes = options.maxBytes ?? 0;
    if (!Number.isInteger(maxMessages) || maxMessages < 0 || maxMessages > 0xffff_ffff)
      throw new RangeError(`maxMessages must be an integer ≥ 0, got ${maxMessages}`);
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0)
      throw new RangeError(`maxBytes must be an integer ≥ 0, got ${maxBytes}`);
    this.#call = client.publish();
    let opened!: () => void;
    this.#ready = new Promise<void>((resolve, reject) => {
      opened = resolve;
      this.#end.then(() => reject(this.#failure ?? new NerveBusError(StatusCode.CANCELLED, "stream ended")));
    });
    this.#ready.catch(() => {});
    this.#call.on("data", (r: PublishResponse) => {
      if (r.opened !== undefined) {
        this.#granted = { messages: r.opened.messages, bytes: Number(r.opened.bytes) };
        this.#credit = { ...this.#granted };
        this.#opened = true;
        opened();
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
            messageId: sent.ids[i] ?? "",
          })),
        );
      }
      if (r.credit !== undefined) {
        this.#credit.messages += r.credit.messages;
        this.#credit.bytes += Number(r.credit.bytes);
      }
      this.#wake();
    });
    this.#call.on("error", (err) => this.#fail(toNerveBusError(err)));
    this.#call.on("status", (s: grpc.StatusObject) => {
      if (s.code !== StatusCode.OK) this.#fail(errorFromStatus(s));
      this.#finish();
    });
    this.#call.write(
      create(PublishRequestSchema, {
        open: create(PublishOpenSchema, {
          topic,
          maxMessages,
          maxBytes: BigInt(maxBytes),
          noConfirms: this.#noConfirms,
        }),
      }),
    );
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
   * INVALID_ARGUMENT for a batch that can never fit the credit, and with the stream's error.
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
    if (wire.length > this.#granted.messages || bytes > this.#granted.bytes)
      throw invalidArgument(
        "messages",
        `a batch of ${wire.length} messages and ${bytes} bytes never fits the credit of ${this.#granted.messages} messages and ${this.#granted.bytes} bytes`,
      );
    while (
      this.#failure === undefined &&
      (this.#waiting.length > 0 || this.#credit.messages < wire.length || this.#credit.bytes < bytes)
    )
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    if (this.#failure !== undefined) throw this.#failure;
    this.#credit.messages -= wire.length;
    this.#credit.bytes -= bytes;
    const result = this.#noConfirms
      ? Promise.resolve([])
      : new Promise<PublishResult[]>((resolve, reject) =>
          this.#sent.push({ ids: wire.map((m) => m.messageId), resolve, reject }),
        );
    this.#call.write(create(PublishRequestSchema, { messages: wire }));
    // The next waiting send() may fit too.
    this.#wake();
    return result;
  }

  /**
   * Half-closes the stream and waits until every batch sent is confirmed and the broker ended
   * the stream; rejects with the stream's error, if it had one. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#onClose();
      this.#call.end();
      await this.#end;
      if (this.#failure !== undefined) throw this.#failure;
    })();
    return this.#closed;
  }

  #fail(err: NerveBusError): void {
    this.#failure ??= err;
    for (const s of this.#sent.splice(0)) s.reject(this.#failure);
    this.#wake();
    this.#finish();
  }

  #finish(): void {
    if (!this.#opened && this.#failure === undefined)
      this.#failure = new NerveBusError(StatusCode.UNAVAILABLE, "stream ended before the broker opened it");
    for (const s of this.#sent.splice(0))
      s.reject(this.#failure ?? new NerveBusError(StatusCode.UNAVAILABLE, "stream ended before the confirm"));
    this.#ended();
  }

  #wake(): void {
    const waiting = this.#waiting.splice(0);
    for (const w of waiting) w();
  }
}
