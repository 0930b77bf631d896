import type * as grpc from "@grpc/grpc-js";
import { type Cluster, NerveBusError } from "../core/index.js";
import type { Logger } from "../telemetry/index.js";

/**
 * Header of a call one broker of the cluster makes to another (a forwarded client call, or dead
 * letters): the sending broker's id. Honoured only with a matching PEER_SECRET_HEADER; then the
 * receiver serves the call itself (or answers UNAVAILABLE) and never forwards it again, so two
 * brokers whose views of the cluster differ for a moment cannot send a call back and forth.
 */
export const FORWARDED_HEADER = "nervebus-forwarded";

/** The sending broker's peer secret (Cluster.secret). */
export const PEER_SECRET_HEADER = "nervebus-peer-secret";

/** A forwarded call's client address: the owner audits it and counts shares by it. */
export const FORWARDED_FOR_HEADER = "nervebus-forwarded-for";

/**
 * A forwarded call's client-certificate principal, UTF-8: the certificate stays on the
 * connection to the broker called first, which verified it in its TLS handshake.
 */
export const FORWARDED_CERTIFICATE_HEADER = "nervebus-forwarded-certificate-bin";

/**
 * Header of a SendPack of dead letters for a topic the receiver owns: their dead-letter
 * attributes (reserved otherwise) are accepted when the call comes from a verified peer.
 */
export const DEAD_LETTER_HEADER = "nervebus-dead-letters";

/** Every header only a broker of the cluster may send: a client's are never passed on. */
const PEER_HEADERS = [
  FORWARDED_HEADER,
  PEER_SECRET_HEADER,
  FORWARDED_FOR_HEADER,
  FORWARDED_CERTIFICATE_HEADER,
  DEAD_LETTER_HEADER,
];

/** What the broker that forwarded a call says about its client. */
export interface ForwardedClient {
  /** The client's address (as grpc-js names peers). */
  readonly peer: string | undefined;
  /** The principal of the client certificate that broker verified. */
  readonly certificate: string | undefined;
}

const text = (v: grpc.MetadataValue | undefined) => (typeof v === "string" ? v : undefined);

/**
 * Tells calls from other brokers of the cluster from client calls, by the peer secret each
 * broker registers in the shared database (Cluster.verifyPeer), and marks this broker's own
 * calls to others. A call that names a broker (broker ids are public: GetCluster, the status
 * page) without its secret is refused (see refusal), before anything reads its headers; the
 * other peer headers count only on a verified call. A broker without --cluster has none: there
 * the headers mean nothing.
 */
export class PeerAuth {
  /** Verdict per call (a call's metadata object is its own), so each call is checked once. */
  readonly #verdicts = new WeakMap<grpc.Metadata, string | null>();

  constructor(
    readonly cluster: Cluster,
    private readonly log: Logger,
  ) {}

  /** The id of the broker that made the call, verified; undefined for a client's call. */
  peerOf(metadata: grpc.Metadata): string | undefined {
    const known = this.#verdicts.get(metadata);
    if (known !== undefined) return known ?? undefined;
    const id = text(metadata.get(FORWARDED_HEADER)[0]);
    const secret = text(metadata.get(PEER_SECRET_HEADER)[0]);
    const verdict =
      id !== undefined && secret !== undefined && this.cluster.verifyPeer(id, secret) ? id : null;
    this.#verdicts.set(metadata, verdict);
    return verdict ?? undefined;
  }

  /**
   * Why a call that claims to come from a broker of the cluster (FORWARDED_HEADER) is refused,
   * audited; undefined for a verified broker's call and for a client call that claims nothing.
   * PERMISSION_DENIED when it names a live broker whose secret it lacks (forged: that broker
   * signs its calls); UNAVAILABLE when it names one this broker does not know, which may be a
   * broker started since the last heartbeat (its caller retries) or one of an earlier version
   * (no secret). Never ignored: served as a
   * client call, a call forwarded by an unknown broker would be authorized by that broker's own
   * connection and certificate.
   */
  refusal(metadata: grpc.Metadata, peer: string): NerveBusError | undefined {
    const claimed = metadata.get(FORWARDED_HEADER)[0];
    if (claimed === undefined || this.peerOf(metadata) !== undefined) return undefined;
    const id = String(claimed);
    const known = this.cluster.knowsPeer(id);
    const err = known
      ? new NerveBusError(
          "permission_denied",
          `the call claims to come from broker ${JSON.stringify(id)} of the cluster (${FORWARDED_HEADER}) without that broker's peer secret; clients must not send the ${FORWARDED_HEADER} header`,
        )
      : new NerveBusError(
          "unavailable",
          `the call claims to come from broker ${JSON.stringify(id)} (${FORWARDED_HEADER}), which is not a live broker of this cluster with a peer secret as this broker saw it last; retry (a broker that just started is seen within a heartbeat)`,
        );
    this.log("warn", "audit", { outcome: "peer_refused", claimed: id, peer, reason: err.message });
    return err;
  }

  /** The client of a call another broker forwarded; undefined for any other call. */
  forwardedClient(metadata: grpc.Metadata): ForwardedClient | undefined {
    if (this.peerOf(metadata) === undefined) return undefined;
    const cert = metadata.get(FORWARDED_CERTIFICATE_HEADER)[0];
    return {
      peer: text(metadata.get(FORWARDED_FOR_HEADER)[0]),
      certificate: Buffer.isBuffer(cert) ? cert.toString("utf8") : undefined,
    };
  }

  /** Whether the call is a SendPack of dead letters from a verified broker of the cluster. */
  deadLetters(metadata: grpc.Metadata): boolean {
    return metadata.get(DEAD_LETTER_HEADER).length > 0 && this.peerOf(metadata) !== undefined;
  }

  /**
   * Marks `md` (outgoing) as this broker's call to another broker: drops every peer header a
   * client put there, then adds this broker's id and secret, and what it says of `client`.
   */
  sign(md: grpc.Metadata, client?: ForwardedClient): void {
    for (const h of PEER_HEADERS) md.remove(h);
    md.set(FORWARDED_HEADER, this.cluster.self);
    md.set(PEER_SECRET_HEADER, this.cluster.secret);
    if (client?.peer !== undefined) md.set(FORWARDED_FOR_HEADER, client.peer);
    if (client?.certificate !== undefined)
      md.set(FORWARDED_CERTIFICATE_HEADER, Buffer.from(client.certificate, "utf8"));
  }
}
