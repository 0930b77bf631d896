import type { PeerCertificate } from "node:tls";
import { NerveBusError } from "../core/index.js";
import { certificatePrincipal } from "./certificate-principal.js";
import { type JwtIdentity, JwtVerifier } from "./jwt-verifier.js";
import { type Action, type NameScope, Policy } from "./policy.js";
import { Reloadable, textFile } from "./reloadable.js";
import { readTlsFiles, type TlsMaterial, toTlsMaterial } from "./tls-material.js";
import { TokenTable } from "./token-table.js";

/** The security settings of the broker (src/config): file paths, "" when unset. */
export interface SecuritySettings {
  readonly tlsCert: string;
  readonly tlsKey: string;
  readonly tlsClientCa: string;
  readonly authTokens: string;
  readonly authJwks: string;
  readonly authJwtIssuer: string;
  readonly authJwtAudience: string;
  readonly authJwtPrincipalClaim: string;
  readonly authPolicy: string;
}

/** Who makes a call, and how that was established. */
export interface Principal {
  readonly name: string;
  readonly via: "token" | "jwt" | "certificate";
}

/** What a call or request brings to prove who it is. */
export interface Credentials {
  /** The `authorization` metadata or header values. */
  readonly authorization: readonly string[];
  /** The client certificate, when the TLS layer verified one. */
  readonly certificate: PeerCertificate | undefined;
  /**
   * The principal of the client certificate another broker of the cluster verified, for a call
   * it forwarded (the certificate itself stays on that broker's connection).
   */
  readonly forwardedCertificate?: string | undefined;
}

/** What a reload did: the files re-read with a change, and the ones refused (old kept). */
export interface ReloadReport {
  readonly changed: readonly string[];
  readonly errors: readonly string[];
}

/** Verified JWTs kept, so a producer's every SendPack does not cost a signature check. */
const JWT_CACHE_ENTRIES = 1024;

function unauthenticated(reason: string): NerveBusError {
  return new NerveBusError("unauthenticated", reason);
}

/**
 * The broker's security state (DESIGN §5a): TLS material, the ways a caller proves who it is
 * (static tokens, JWTs, client certificates) and the policy of what each principal may do.
 * Every file is read and checked by load(); reload() re-reads them (on SIGHUP, and every
 * --security-reload-ms), replacing each one that changed and still parses and keeping the one
 * in use when it does not. Calls already running keep what they were granted.
 */
export class Security {
  readonly #tls: Reloadable<TlsMaterial> | undefined;
  readonly #tlsListeners = new Set<(m: TlsMaterial) => void>();
  readonly #tokens: Reloadable<TokenTable> | undefined;
  readonly #jwks: Reloadable<JwtVerifier> | undefined;
  readonly #policy: Reloadable<Policy> | undefined;
  readonly #jwtCache = new Map<string, JwtIdentity>();

  private constructor(readonly settings: SecuritySettings) {
    const s = settings;
    if (s.tlsCert !== "") {
      const files = { cert: s.tlsCert, key: s.tlsKey, clientCa: s.tlsClientCa };
      this.#tls = new Reloadable(
        "tls",
        () => JSON.stringify(readTlsFiles(files).map((b) => b.toString("base64"))),
        (snapshot) =>
          toTlsMaterial(
            files,
            (JSON.parse(snapshot) as string[]).map((b) => Buffer.from(b, "base64")),
          ),
      );
    }
    this.#tokens = textFile("auth-tokens", s.authTokens, TokenTable.parse);
    const rules = {
      issuer: s.authJwtIssuer,
      audience: s.authJwtAudience,
      principalClaim: s.authJwtPrincipalClaim,
    };
    this.#jwks = textFile("auth-jwks", s.authJwks, (path, text) => JwtVerifier.parse(path, text, rules));
    this.#policy = textFile("auth-policy", s.authPolicy, Policy.parse);
  }

  /**
   * Reads and checks every configured file. Throws NerveBusError (invalid_argument) naming the
   * flag, the file and the line or key at fault. The settings' combinations are the config's
   * to check (src/config).
   */
  static load(settings: SecuritySettings): Security {
    return new Security(settings);
  }

  /** Whether both ports speak TLS only. */
  get tlsEnabled(): boolean {
    return this.#tls !== undefined;
  }

  /** Whether clients must present a certificate signed by --tls-client-ca. */
  get mutualTls(): boolean {
    return this.settings.tlsClientCa !== "";
  }

  /** Whether every call needs a principal (tokens, JWTs or client certificates are configured). */
  get authEnabled(): boolean {
    return this.#tokens !== undefined || this.#jwks !== undefined || this.mutualTls;
  }

  /** The TLS material in use, undefined without TLS. */
  get tls(): TlsMaterial | undefined {
    return this.#tls?.value;
  }

  /** Calls `listener` with the new material whenever a reload replaced it. */
  onTlsChange(listener: (m: TlsMaterial) => void): () => void {
    this.#tlsListeners.add(listener);
    return () => this.#tlsListeners.delete(listener);
  }

  /**
   * Who the credentials stand for: a bearer token (a static one, else a JWT) when one is sent,
   * else the verified client certificate. Throws NerveBusError (unauthenticated) saying what
   * was missing or wrong; a bad token is refused even when a certificate would do.
   */
  authenticate(credentials: Credentials, nowMs = Date.now()): Principal {
    const tokensOn = this.#tokens !== undefined || this.#jwks !== undefined;
    const { authorization, certificate } = credentials;
    if (tokensOn && authorization.length > 0) {
      if (authorization.length > 1) throw unauthenticated("authorization: sent more than once");
      const m = /^Bearer +([\x21-\x7e]+) *$/i.exec(authorization[0]!);
      if (m === null) throw unauthenticated('authorization: expected "Bearer <token>"');
      return this.#fromToken(m[1]!, nowMs);
    }
    if (credentials.forwardedCertificate !== undefined && this.mutualTls)
      return { name: credentials.forwardedCertificate, via: "certificate" };
    if (certificate !== undefined && this.mutualTls) {
      const name = certificatePrincipal(certificate);
      if (name === undefined)
        throw unauthenticated("client certificate: names nobody (no subject CN and no SAN)");
      return { name, via: "certificate" };
    }
    const ways = [
      tokensOn ? '"authorization: Bearer <token>"' : "",
      this.mutualTls ? "a client certificate" : "",
    ];
    throw unauthenticated(`no credentials: send ${ways.filter((w) => w !== "").join(" or ")}`);
  }

  #fromToken(token: string, nowMs: number): Principal {
    const name = this.#tokens?.value.lookup(token);
    if (name !== undefined) return { name, via: "token" };
    const jwt = this.#jwks?.value;
    if (jwt === undefined || token.split(".").length !== 3)
      throw unauthenticated("bearer token: not a known token");
    const cached = this.#jwtCache.get(token);
    if (cached !== undefined && nowMs < cached.expiresAtMs) return { name: cached.principal, via: "jwt" };
    this.#jwtCache.delete(token);
    const identity = jwt.verify(token, nowMs);
    if (this.#jwtCache.size >= JWT_CACHE_ENTRIES) this.#jwtCache.clear();
    this.#jwtCache.set(token, identity);
    return { name: identity.principal, via: "jwt" };
  }

  /** Whether `principal` may do `action` on `topic` (and `subscription`); see Policy.allows. */
  allows(principal: Principal, action: Action, topic: NameScope, subscription?: NameScope): boolean {
    return this.#currentPolicy().allows(principal.name, action, topic, subscription);
  }

  /** Whether `principal` may do `action` on some topic (the gate of list operations). */
  allowsSomewhere(principal: Principal, action: Action): boolean {
    return this.#currentPolicy().allowsSomewhere(principal.name, action);
  }

  #currentPolicy(): Policy {
    return this.#policy?.value ?? ALLOW_ALL;
  }

  /**
   * Re-reads every file. One that changed and parses replaces the one in use; one that does not
   * parse is reported and the old one kept. `force` re-checks unchanged files too (SIGHUP), so
   * a file still broken is reported again.
   */
  reload(force: boolean): ReloadReport {
    const changed: string[] = [];
    const errors: string[] = [];
    const attempt = (what: string, fn: () => boolean) => {
      try {
        if (fn()) changed.push(what);
      } catch (err) {
        errors.push((err as Error).message);
      }
    };
    const tls = this.#tls;
    if (tls !== undefined)
      attempt(tls.label, () => {
        const replaced = tls.reload(force);
        if (replaced) for (const l of this.#tlsListeners) l(tls.value);
        return replaced;
      });
    const jwks = this.#jwks;
    if (jwks !== undefined)
      attempt(jwks.label, () => {
        const replaced = jwks.reload(force);
        if (replaced) this.#jwtCache.clear();
        return replaced;
      });
    for (const file of [this.#tokens, this.#policy])
      if (file !== undefined) attempt(file.label, () => file.reload(force));
    return { changed, errors };
  }
}

const ALLOW_ALL = Policy.allowAll();
