import * as grpc from "@grpc/grpc-js";
import type { Cluster } from "../core/index.js";
import { passThrough, rawRequest } from "./grpc-adapter.js";
import { OWNER_TRAILER } from "./status.js";

/**
 * Header of a call one broker forwarded to another: the receiving broker serves it itself (or
 * answers UNAVAILABLE), never forwards it again, so two brokers whose views of the cluster
 * differ for a moment cannot send a call back and forth.
 */
export const FORWARDED_HEADER = "nervebus-forwarded";

/** Headers grpc-js sets on every call itself; the caller's others (token, traceparent…) go on. */
const TRANSPORT_HEADERS = ["user-agent", "grpc-accept-encoding", "grpc-encoding", "content-type", "te"];

const identity = (b: Buffer) => b;

/** A status from the owner, handed to the caller as it is. */
function passStatus(err: Partial<grpc.StatusObject>): Partial<grpc.StatusObject> {
  return {
    code: err.code ?? grpc.status.UNKNOWN,
    details: err.details ?? "",
    metadata: err.metadata ?? new grpc.Metadata(),
  };
}

/**
 * Sends calls for topics owned by another broker of the cluster to it, as the bytes they came
 * in (grpc-js clients with identity serializers: nothing is decoded or encoded again), with the
 * caller's metadata, so the owner authenticates, authorizes and traces the call as its own.
 * Answers and statuses come back unchanged. One channel per owner, kept.
 */
export class Forwarder {
  readonly #clients = new Map<string, grpc.Client>();

  constructor(
    private readonly cluster: Cluster,
    private readonly maxMessageBytes: number,
  ) {}

  /** Where a call for `topic` goes: another broker's address, or undefined to serve it here. */
  target(topic: string, metadata: grpc.Metadata): string | undefined {
    if (topic === "" || metadata.get(FORWARDED_HEADER).length > 0) return undefined;
    return this.cluster.route(topic);
  }

  /**
   * The owner a local attempt was refused for (its status names it), unless the call was
   * forwarded already.
   */
  redirect(status: Partial<grpc.StatusObject> | null, metadata: grpc.Metadata): string | undefined {
    if (status?.code !== grpc.status.UNAVAILABLE || metadata.get(FORWARDED_HEADER).length > 0)
      return undefined;
    const owner = status.metadata?.get(OWNER_TRAILER)[0];
    return typeof owner === "string" && owner !== "" ? owner : undefined;
  }

  /** Forwards a unary call to `address` and answers with the owner's answer. */
  unary(
    path: string,
    address: string,
    call: grpc.ServerUnaryCall<object, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ): void {
    const raw = rawRequest(call.request);
    if (raw === undefined) {
      callback({ code: grpc.status.INTERNAL, details: "request bytes were not kept for forwarding" });
      return;
    }
    this.#client(address).makeUnaryRequest(
      path,
      identity,
      identity,
      raw,
      this.#outgoing(call.metadata),
      { deadline: call.getDeadline() },
      (err, res) => (err ? callback(passStatus(err)) : callback(null, passThrough(res!))),
    );
  }

  /**
   * Forwards a bidi stream whose first request was `first`: requests go up, answers come down
   * (waiting while the caller's side is full), and the owner's status ends the caller's stream:
   * UNAVAILABLE when the owner goes or hands the topic over, so the client reconnects.
   */
  stream(path: string, address: string, call: grpc.ServerDuplexStream<object, unknown>, first: object): void {
    const up = this.#client(address).makeBidiStreamRequest(
      path,
      identity,
      identity,
      this.#outgoing(call.metadata),
      { deadline: call.getDeadline() },
    );
    const send = (req: object) => {
      const raw = rawRequest(req);
      if (raw !== undefined) up.write(raw);
    };
    send(first);
    call.on("data", send);
    call.on("end", () => up.end());
    call.on("cancelled", () => up.cancel());
    call.on("error", () => up.cancel());
    up.on("data", (bytes: Buffer) => {
      if (!call.write(passThrough(bytes))) {
        up.pause();
        call.once("drain", () => up.resume());
      }
    });
    // Errors arrive as the status below as well.
    up.on("error", () => undefined);
    up.on("status", (status: grpc.StatusObject) => {
      if (status.code === grpc.status.OK) call.end(status.metadata);
      else call.emit("error", passStatus(status));
    });
  }

  /** Closes the channels to other brokers. */
  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }

  #outgoing(incoming: grpc.Metadata): grpc.Metadata {
    const md = incoming.clone();
    for (const h of TRANSPORT_HEADERS) md.remove(h);
    md.set(FORWARDED_HEADER, this.cluster.self);
    return md;
  }

  #client(address: string): grpc.Client {
    let client = this.#clients.get(address);
    if (client === undefined) {
      // Plaintext: brokers of a cluster reach each other on a private network (see README).
      client = new grpc.Client(address, grpc.credentials.createInsecure(), {
        "grpc.max_receive_message_length": this.maxMessageBytes,
        "grpc.max_send_message_length": this.maxMessageBytes,
      });
      this.#clients.set(address, client);
    }
    return client;
  }
}
