import { create } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import type { Message } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import {
  type PublisherService,
  type PublishRequest,
  PublishRequestSchema,
  type PublishResponse,
  type SendPackResponse,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import type { ServiceClient } from "../api/index.js";

type PublisherClient = ServiceClient<(typeof PublisherService)["method"]>;

/**
 * `nervebus publish --stream`: the packs go as batches of one Publish stream. A batch waits for
 * the broker's credit; its confirm is what SendPack would have answered. The first error ends
 * the stream and rejects what is waiting.
 */
export class StreamSender {
  readonly #call: grpc.ClientDuplexStream<PublishRequest, PublishResponse>;
  #credit = { messages: 0, bytes: 0 };
  #opened = false;
  #failure: unknown;
  #ended = false;
  readonly #confirms: ((r: SendPackResponse | Error) => void)[] = [];
  #wake: (() => void) | undefined;

  constructor(client: PublisherClient, topic: string) {
    this.#call = client.publish();
    this.#call.on("data", (r: PublishResponse) => {
      if (r.opened !== undefined) {
        this.#credit = { messages: r.opened.messages, bytes: Number(r.opened.bytes) };
        this.#opened = true;
      }
      for (const c of r.confirms) this.#confirms.shift()?.(c.result!);
      if (r.credit !== undefined) {
        this.#credit.messages += r.credit.messages;
        this.#credit.bytes += Number(r.credit.bytes);
      }
      this.#wake?.();
    });
    this.#call.on("error", (err) => {
      this.#failure = err;
      for (const c of this.#confirms.splice(0)) c(err);
      this.#wake?.();
    });
    this.#call.on("status", () => {
      this.#ended = true;
      this.#wake?.();
    });
    this.#call.write(create(PublishRequestSchema, { open: { topic } }));
  }

  /**
   * Sends a batch once the credit allows (rejects with the stream's error); `confirmed` then
   * resolves with its confirm.
   */
  async send(messages: Message[], bytes: number): Promise<{ confirmed: Promise<SendPackResponse> }> {
    while (
      this.#failure === undefined &&
      !this.#ended &&
      (!this.#opened || this.#credit.messages < messages.length || this.#credit.bytes < bytes)
    )
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#ended) throw new Error("the broker ended the stream");
    this.#credit.messages -= messages.length;
    this.#credit.bytes -= bytes;
    const confirmed = new Promise<SendPackResponse>((resolve, reject) =>
      this.#confirms.push((r) => (r instanceof Error ? reject(r) : resolve(r))),
    );
    confirmed.catch(() => {});
    this.#call.write(create(PublishRequestSchema, { messages }));
    return { confirmed };
  }

  /** Half-closes the stream. */
  end(): void {
    this.#call.end();
  }
}
