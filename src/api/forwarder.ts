import * as grpc from "@grpc/grpc-js";
import { certificatePrincipal } from "../auth/index.js";
import { answerBy, type Cluster } from "../core/index.js";
import { passThrough, rawRequest } from "./grpc-adapter.js";
import type { PeerAuth } from "./peer-auth.js";
import type { PeerChannels } from "./peer-channels.js";
import { callDeadline } from "./publisher-handler.js";
import { OWNER_TRAILER, toGrpcStatus } from "./status.js";

/** The parts of a grpc-js server call forwarding reads. */
type IncomingCall = Pick<grpc.ServerUnaryCall<object, unknown>, "metadata" | "getPeer" | "getAuthContext">;

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
 * The deadline of a call forwarded to `address`, and what becomes of its status: with a
 * deadline, the forward ends before it (answerBy), so that an owner that does not answer
 * (frozen, partitioned) gets the caller this broker's UNAVAILABLE, outcome unknown, rather than
 * its client's bare DEADLINE_EXCEEDED. The owner's own DEADLINE_EXCEEDED becomes the same: a
 * retry with the same message ids is right after either.
 */
function forwardBounds(call: Pick<grpc.ServerUnaryCall<object, unknown>, "getDeadline">, address: string) {
  const deadline = callDeadline(call);
  if (deadline === Number.POSITIVE_INFINITY) return { deadline: call.getDeadline(), status: passStatus };
  return {
    deadline: answerBy(deadline, Date.now()),
    status: (err: Partial<grpc.StatusObject>): Partial<grpc.StatusObject> =>
      err.code === grpc.status.DEADLINE_EXCEEDED
        ? {
            code: grpc.status.UNAVAILABLE,
            details: `the topic's owner ${address} did not answer before the call's deadline; outcome unknown: retry with the same message ids`,
            metadata: new grpc.Metadata(),
          }
        : passStatus(err),
  };
}

/**
 * Sends calls for topics owned by another broker of the cluster to it, as the bytes they came
 * in (grpc-js clients with identity serializers: nothing is decoded or encoded again), with the
 * caller's metadata (token, traceparent), its address and the principal of its verified client
 * certificate, signed as this broker's (PeerAuth), so the owner authenticates, authorizes and
 * traces the call as the caller's, never as this broker's. Answers and statuses come back
 * unchanged.
 */
export class Forwarder {
  constructor(
    private readonly cluster: Cluster,
    private readonly peers: PeerAuth,
    private readonly channels: PeerChannels,
  ) {}

  /**
   * The refusal of a call that claims to come from another broker and does not prove it
   * (PeerAuth.refusal), as a status; null for any other call.
   */
  refusal(call: Pick<IncomingCall, "metadata" | "getPeer">): Partial<grpc.StatusObject> | null {
    const err = this.peers.refusal(call.metadata, call.getPeer());
    return err === undefined ? null : toGrpcStatus(err);
  }

  /**
   * Where a call for `topic` goes: another broker's address, or undefined to serve it here (as
   * every call a verified broker forwarded is: it is never forwarded twice).
   */
  target(topic: string, metadata: grpc.Metadata): string | undefined {
    if (topic === "" || this.peers.peerOf(metadata) !== undefined) return undefined;
    return this.cluster.route(topic);
  }

  /**
   * The owner a local attempt was refused for (its status names it), unless the call was
   * forwarded already.
   */
  redirect(status: Partial<grpc.StatusObject> | null, metadata: grpc.Metadata): string | undefined {
    if (status?.code !== grpc.status.UNAVAILABLE || this.peers.peerOf(metadata) !== undefined)
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
    const { deadline, status } = forwardBounds(call, address);
    this.channels
      .client(address)
      .makeUnaryRequest(path, identity, identity, raw, this.#outgoing(call), { deadline }, (err, res) =>
        err ? callback(status(err)) : callback(null, passThrough(res!)),
      );
  }

  /**
   * Forwards a bidi stream whose first request was `first`: requests go up, answers come down
   * (waiting while the caller's side is full), and the owner's status ends the caller's stream:
   * UNAVAILABLE when the owner goes or hands the topic over, so the client reconnects.
   */
  stream(path: string, address: string, call: grpc.ServerDuplexStream<object, unknown>, first: object): void {
    const { deadline, status: answer } = forwardBounds(call, address);
    const up = this.channels
      .client(address)
      .makeBidiStreamRequest(path, identity, identity, this.#outgoing(call), { deadline });
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
      else call.emit("error", answer(status));
    });
  }

  #outgoing(call: IncomingCall): grpc.Metadata {
    const md = call.metadata.clone();
    for (const h of TRANSPORT_HEADERS) md.remove(h);
    // grpc-js hands over a client certificate only once its TLS handshake verified it (mTLS).
    const cert = call.getAuthContext().sslPeerCertificate;
    this.peers.sign(md, {
      peer: call.getPeer(),
      certificate: cert === undefined ? undefined : certificatePrincipal(cert),
    });
    return md;
  }
}
