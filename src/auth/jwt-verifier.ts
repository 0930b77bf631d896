import { createPublicKey, type KeyObject, verify } from "node:crypto";
import { NerveBusError } from "../core/index.js";
import { fileError, parseJsonFile } from "./file-error.js";

/** What a JWT must say to be accepted. */
export interface JwtRules {
  /** Exact `iss`. */
  readonly issuer: string;
  /** Must be `aud` or one of its entries. */
  readonly audience: string;
  /** The claim naming the principal (usually `sub`). */
  readonly principalClaim: string;
}

/** Clock difference tolerated on `exp` and `nbf` between the issuer and the broker. */
const LEEWAY_MS = 30_000;

type Alg = "RS256" | "ES256";

interface VerifyKey {
  readonly kid: string | undefined;
  readonly alg: Alg;
  readonly key: KeyObject;
}

/** A token's principal and when it stops being valid. */
export interface JwtIdentity {
  readonly principal: string;
  readonly expiresAtMs: number;
}

const B64URL = /^[A-Za-z0-9_-]*$/;

function refuse(reason: string): NerveBusError {
  return new NerveBusError("unauthenticated", `bearer token: JWT ${reason}`);
}

function decodeJson(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  } catch {
    throw refuse(`${what} is not base64url JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw refuse(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/** One JWK as a verification key, undefined when it is not a signing key we use. */
function toVerifyKey(file: string, where: string, jwk: unknown): VerifyKey | undefined {
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk))
    throw fileError(file, where, "must be a JWK object");
  const k = jwk as Record<string, unknown>;
  if (k.d !== undefined)
    throw fileError(file, where, "is a private key; the JWKS file holds public keys only");
  // Keys for encryption, and kinds other than RSA and P-256, are skipped: an identity
  // provider's JWKS may list them beside its signing keys.
  if (k.use !== undefined && k.use !== "sig") return undefined;
  let alg: Alg;
  if (k.kty === "RSA" && (k.alg === undefined || k.alg === "RS256")) alg = "RS256";
  else if (k.kty === "EC" && k.crv === "P-256" && (k.alg === undefined || k.alg === "ES256")) alg = "ES256";
  else return undefined;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: k as import("node:crypto").JsonWebKey, format: "jwk" });
  } catch (err) {
    throw fileError(file, where, `is not a usable ${alg} key (${(err as Error).message})`);
  }
  // 2048 bits: NIST's floor for RSA signatures since 2013.
  if (alg === "RS256" && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048)
    throw fileError(file, where, "is an RSA key shorter than 2048 bits");
  if (k.kid !== undefined && typeof k.kid !== "string")
    throw fileError(file, `${where}.kid`, "must be a string");
  return { kid: k.kid as string | undefined, alg, key };
}

/**
 * Verifies JWT bearer tokens against the public keys of a JWKS file, RS256 and ES256 only
 * (never `none` or an HMAC, whose key the broker would have to hold), then checks `iss`,
 * `aud`, `exp` (required) and `nbf`, each with LEEWAY_MS of clock skew.
 */
export class JwtVerifier {
  private constructor(
    readonly keys: readonly VerifyKey[],
    readonly rules: JwtRules,
  ) {}

  /** Parses a JWKS file; throws NerveBusError (invalid_argument) naming the file and key. */
  static parse(file: string, text: string, rules: JwtRules): JwtVerifier {
    const raw = parseJsonFile(file, text) as { keys?: unknown };
    if (typeof raw !== "object" || raw === null || !Array.isArray(raw.keys))
      throw fileError(file, "keys", 'must be an array: the file is a JWKS, {"keys": [...]}');
    const keys = raw.keys.flatMap((k, i) => toVerifyKey(file, `keys[${i}]`, k) ?? []);
    if (keys.length === 0)
      throw fileError(file, "keys", "has no RS256 (RSA) or ES256 (EC P-256) signing key");
    return new JwtVerifier(keys, rules);
  }

  /** The token's principal; throws NerveBusError (unauthenticated) saying what is wrong. */
  verify(token: string, nowMs: number): JwtIdentity {
    const parts = token.split(".");
    if (parts.length !== 3 || !parts.every((p) => B64URL.test(p)))
      throw refuse("is not three base64url parts");
    const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
    const header = decodeJson(headerPart, "header");
    const alg = header.alg;
    if (alg !== "RS256" && alg !== "ES256")
      throw refuse(`alg ${JSON.stringify(alg)} is not accepted; use RS256 or ES256`);
    if (header.crit !== undefined) throw refuse("header has crit extensions, which are not supported");
    const kid = header.kid;
    const candidates = this.keys.filter((k) => k.alg === alg && (kid === undefined || k.kid === kid));
    if (candidates.length === 0)
      throw refuse(`kid ${JSON.stringify(kid)} (${alg}) matches no key of the JWKS file`);
    const data = Buffer.from(`${headerPart}.${payloadPart}`);
    const signature = Buffer.from(signaturePart, "base64url");
    const good = candidates.some((k) => {
      try {
        return verify(
          "sha256",
          data,
          alg === "ES256" ? { key: k.key, dsaEncoding: "ieee-p1363" } : k.key,
          signature,
        );
      } catch {
        // A signature of the wrong length for the key: not a valid one.
        return false;
      }
    });
    if (!good) throw refuse("signature does not verify with the JWKS keys");
    const claims = decodeJson(payloadPart, "payload");
    const { issuer, audience, principalClaim } = this.rules;
    if (claims.iss !== issuer)
      throw refuse(`issuer ${JSON.stringify(claims.iss)} is not ${JSON.stringify(issuer)}`);
    const aud = claims.aud;
    if (!(aud === audience || (Array.isArray(aud) && aud.includes(audience))))
      throw refuse(`audience ${JSON.stringify(aud)} does not include ${JSON.stringify(audience)}`);
    if (typeof claims.exp !== "number") throw refuse("has no exp (expiry) claim");
    const expiresAtMs = claims.exp * 1000;
    if (nowMs >= expiresAtMs + LEEWAY_MS) throw refuse(`expired at ${new Date(expiresAtMs).toISOString()}`);
    if (claims.nbf !== undefined) {
      if (typeof claims.nbf !== "number") throw refuse("nbf is not a number");
      if (nowMs < claims.nbf * 1000 - LEEWAY_MS)
        throw refuse(`is not valid before ${new Date(claims.nbf * 1000).toISOString()}`);
    }
    const principal = claims[principalClaim];
    if (typeof principal !== "string" || principal === "")
      throw refuse(`has no ${JSON.stringify(principalClaim)} claim naming the principal`);
    return { principal, expiresAtMs: expiresAtMs + LEEWAY_MS };
  }
}
