import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { FLOW_CONTROL_OPTIONS } from "../../clients/ts/src/grpc-adapter.js";
import type { Security } from "../auth/index.js";
import { NerveBusError } from "../core/index.js";

/**
 * The CA bundle that verifies the other brokers' certificates: `--cluster-tls-ca`, else
 * `--tls-client-ca` (one private CA for brokers and clients, the usual setup); undefined for
 * the system's trusted roots. Throws NerveBusError (invalid_argument) naming the flag.
 */
export function readPeerCa(clusterTlsCa: string, tlsClientCa: string): Buffer | undefined {
  const [flag, path] =
    clusterTlsCa !== "" ? ["cluster-tls-ca", clusterTlsCa] : ["tls-client-ca", tlsClientCa];
  if (path === "") return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new NerveBusError("invalid_argument", `--${flag} ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * The channels of this broker to the other brokers of the cluster, one per address, kept:
 * plaintext when the broker serves plaintext; TLS when it serves TLS, verifying the other
 * broker's certificate against `ca` and the address it advertised, and presenting the broker's
 * own certificate, which brokers started with --tls-client-ca require in the handshake. When a
 * reload replaces the broker's certificate, later calls use new channels; calls in progress
 * finish on theirs.
 */
export class PeerChannels {
  readonly #clients = new Map<string, grpc.Client>();

  constructor(
    private readonly security: Security | undefined,
    private readonly ca: Buffer | undefined,
    private readonly maxMessageBytes: number,
  ) {
    security?.onTlsChange(() => this.close());
  }

  /** The channel to the broker at `address` (HOST:PORT). */
  client(address: string): grpc.Client {
    let client = this.#clients.get(address);
    if (client === undefined) {
      client = new grpc.Client(address, this.#credentials(), {
        // Forwarded Receive streams relay deliveries at the pace of a direct one.
        ...FLOW_CONTROL_OPTIONS,
        "grpc.max_receive_message_length": this.maxMessageBytes,
        "grpc.max_send_message_length": this.maxMessageBytes,
      });
      this.#clients.set(address, client);
    }
    return client;
  }

  /** Closes the channels (calls already started go on). */
  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }

  #credentials(): grpc.ChannelCredentials {
    const material = this.security?.tls;
    if (material === undefined) return grpc.credentials.createInsecure();
    return grpc.credentials.createSsl(this.ca ?? null, material.key, material.cert);
  }
}
