import * as grpc from "@grpc/grpc-js";

/** TLS settings of a connection (PEM contents, as node:tls takes them). */
export interface TlsOptions {
  /** CA certificates to trust instead of the system's roots (the broker's CA). */
  readonly ca?: string | Buffer;
  /** Client certificate chain, for a broker that wants one (mTLS); with `key`. */
  readonly cert?: string | Buffer;
  /** Private key of `cert`. */
  readonly key?: string | Buffer;
  /** The name the broker's certificate must carry, when it is not the host of the address. */
  readonly serverName?: string;
}

/**
 * A bearer token, or a function that returns the current one. The function runs before every
 * call (and every Receive stream), so it can refresh an expiring token; cache inside it. When
 * it throws or rejects, the call fails.
 */
export type TokenSource = string | (() => string | Promise<string>);

function buffer(value: string | Buffer | undefined): Buffer | null {
  return value === undefined ? null : Buffer.from(value);
}

/**
 * Channel credentials for TLS (true: the system's roots) and a bearer token sent as
 * `authorization: Bearer …` on every call. A token needs TLS: sent in plaintext anyone on the
 * path could read and reuse it, so that throws a TypeError.
 */
export function channelCredentials(
  tls: TlsOptions | boolean | undefined,
  token: TokenSource | undefined,
): grpc.ChannelCredentials {
  if (tls === undefined || tls === false) {
    if (token !== undefined) throw new TypeError("a token is sent over TLS only: set the tls option too");
    return grpc.credentials.createInsecure();
  }
  const t = tls === true ? {} : tls;
  if ((t.cert === undefined) !== (t.key === undefined))
    throw new TypeError("tls.cert and tls.key go together");
  const ssl = grpc.credentials.createSsl(buffer(t.ca), buffer(t.key), buffer(t.cert));
  if (token === undefined) return ssl;
  const bearer = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    Promise.resolve()
      .then(() => (typeof token === "string" ? token : token()))
      .then(
        (value) => {
          const md = new grpc.Metadata();
          md.set("authorization", `Bearer ${value}`);
          callback(null, md);
        },
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
      );
  });
  return grpc.credentials.combineChannelCredentials(ssl, bearer);
}

/** Channel options that make TLS check `serverName` instead of the address's host. */
export function serverNameOptions(tls: TlsOptions | boolean | undefined): grpc.ChannelOptions {
  const name = typeof tls === "object" ? tls.serverName : undefined;
  return name === undefined ? {} : { "grpc.ssl_target_name_override": name, "grpc.default_authority": name };
}
