import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { AdminService } from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { PublisherService } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { SubscriberService } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { createClient, FLOW_CONTROL_OPTIONS, type ServiceClient } from "../api/index.js";
import { checkHostPort } from "../config/index.js";
import { NerveBusError } from "../core/index.js";

/** The flags every client command takes to reach a broker (parseArgs options). */
export const CONNECTION_FLAGS = {
  server: { type: "string", default: "127.0.0.1:7070" },
  tls: { type: "boolean", default: false },
  "tls-ca": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-server-name": { type: "string" },
  token: { type: "string" },
} as const;

/** The usage line of CONNECTION_FLAGS. */
export const CONNECTION_USAGE =
  "connection: --server HOST:PORT (default 127.0.0.1:7070) [--tls] [--tls-ca CA.pem] [--tls-cert C.pem --tls-key K.pem]\n" +
  "            [--tls-server-name NAME] [--token T] (or NERVEBUS_TOKEN; a token needs TLS)";

/** The values parseArgs gives for CONNECTION_FLAGS. */
export interface ConnectionValues {
  server?: string | undefined;
  tls?: boolean | undefined;
  "tls-ca"?: string | undefined;
  "tls-cert"?: string | undefined;
  "tls-key"?: string | undefined;
  "tls-server-name"?: string | undefined;
  token?: string | undefined;
}

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new NerveBusError("invalid_argument", `--${flag} ${path}: ${(err as Error).message}`);
  }
}

/**
 * The channel credentials the flags ask for: plaintext, or TLS (system roots unless --tls-ca,
 * a client certificate with --tls-cert/--tls-key) with the bearer token from --token or
 * NERVEBUS_TOKEN on every call. A token over plaintext is refused: anyone on the path could
 * read it.
 */
export function connectionCredentials(
  values: ConnectionValues,
  env: NodeJS.ProcessEnv,
): grpc.ChannelCredentials {
  const ca = values["tls-ca"];
  const cert = values["tls-cert"];
  const key = values["tls-key"];
  const token = values.token ?? (env.NERVEBUS_TOKEN || undefined);
  if ((cert === undefined) !== (key === undefined))
    throw new NerveBusError("invalid_argument", "--tls-cert and --tls-key go together");
  const tls = values.tls === true || ca !== undefined || cert !== undefined;
  if (!tls) {
    if (token !== undefined)
      throw new NerveBusError(
        "invalid_argument",
        "a token (--token or NERVEBUS_TOKEN) is sent over TLS only: add --tls-ca CA.pem (or --tls for the system's roots)",
      );
    return grpc.credentials.createInsecure();
  }
  const ssl = grpc.credentials.createSsl(
    ca === undefined ? null : readPem("tls-ca", ca),
    key === undefined ? null : readPem("tls-key", key),
    cert === undefined ? null : readPem("tls-cert", cert),
  );
  if (token === undefined) return ssl;
  const bearer = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${token}`);
    callback(null, md);
  });
  return grpc.credentials.combineChannelCredentials(ssl, bearer);
}

/** Connects to a broker, failing with one clear line when it cannot be reached in time. */
export async function connect(values: ConnectionValues): Promise<{
  publisher: ServiceClient<(typeof PublisherService)["method"]>;
  subscriber: ServiceClient<(typeof SubscriberService)["method"]>;
  admin: ServiceClient<(typeof AdminService)["method"]>;
  close(): void;
}> {
  const server = values.server ?? CONNECTION_FLAGS.server.default;
  checkHostPort("server", server);
  const credentials = connectionCredentials(values, process.env);
  const options: grpc.ClientOptions = {
    ...FLOW_CONTROL_OPTIONS,
    "grpc.max_receive_message_length": 64 << 20,
    "grpc.max_send_message_length": 64 << 20,
  };
  // The name the broker's certificate must carry, when it is not the one in --server.
  const serverName = values["tls-server-name"];
  if (serverName !== undefined) options["grpc.ssl_target_name_override"] = serverName;
  const publisher = createClient(PublisherService, server, credentials, options);
  const subscriber = createClient(SubscriberService, server, credentials, options);
  const admin = createClient(AdminService, server, credentials, options);
  await new Promise<void>((resolve, reject) =>
    publisher.waitForReady(Date.now() + 5000, (err) =>
      err
        ? reject(
            new NerveBusError(
              "unavailable",
              `--server ${server}: broker not reachable (${err.message})${credentials._isSecure() ? "" : "; if it speaks TLS, add --tls-ca CA.pem"}`,
            ),
          )
        : resolve(),
    ),
  );
  return {
    publisher,
    subscriber,
    admin,
    close() {
      publisher.close();
      subscriber.close();
      admin.close();
    },
  };
}

/** One line for a failed gRPC call: status name and details. */
export function describeGrpcError(err: unknown): string {
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e.code === "number") return `${grpc.status[e.code]}: ${e.details ?? e.message}`;
  return err instanceof Error ? err.message : String(err);
}
