import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";

/** A JWT issuer for tests: its own key pair, its public key as a JWK, and signed tokens. */
export class TestIssuer {
  readonly #private: KeyObject;
  readonly #public: KeyObject;

  constructor(
    readonly alg: "ES256" | "RS256" = "ES256",
    readonly kid = `key-${alg.toLowerCase()}`,
  ) {
    const pair =
      alg === "ES256"
        ? generateKeyPairSync("ec", { namedCurve: "P-256" })
        : generateKeyPairSync("rsa", { modulusLength: 2048 });
    this.#private = pair.privateKey;
    this.#public = pair.publicKey;
  }

  /** The public key as a JWKS entry. */
  jwk(): Record<string, unknown> {
    return { ...this.#public.export({ format: "jwk" }), kid: this.kid, alg: this.alg, use: "sig" };
  }

  /** A signed token with these claims (header fields may be overridden, e.g. alg). */
  sign(claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const data = `${b64({ alg: this.alg, typ: "JWT", kid: this.kid, ...header })}.${b64(claims)}`;
    const key =
      this.alg === "ES256" ? { key: this.#private, dsaEncoding: "ieee-p1363" as const } : this.#private;
    return `${data}.${sign("sha256", Buffer.from(data), key).toString("base64url")}`;
  }
}

/** Seconds since the epoch, `offset` seconds from now (JWT time claims). */
export function epochSeconds(offset = 0): number {
  return Math.floor(Date.now() / 1000) + offset;
}
