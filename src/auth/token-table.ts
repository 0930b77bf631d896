import { createHash } from "node:crypto";
import { fileError } from "./file-error.js";

/** SHA-256 of a bearer token as lowercase hex: the form the tokens file stores. */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Principal names: printable, no whitespace (a certificate CN with spaces is named in the policy only). */
const PRINCIPAL = /^[\x21-\x7e]{1,256}$/;

/**
 * Static bearer tokens, stored hashed so the file (and a backup of it) gives no token away.
 * One per line: the SHA-256 of the token in hex, whitespace, the principal's name; blank lines
 * and lines starting with # are skipped. Several tokens may name one principal (rotation).
 *
 *     # printf %s "$TOKEN" | sha256sum
 *     9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 billing
 */
export class TokenTable {
  readonly #byHash: ReadonlyMap<string, string>;

  private constructor(byHash: ReadonlyMap<string, string>) {
    this.#byHash = byHash;
  }

  /** Parses a tokens file; throws NerveBusError (invalid_argument) naming the file and line. */
  static parse(file: string, text: string): TokenTable {
    const byHash = new Map<string, string>();
    for (const [i, raw] of text.split("\n").entries()) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      const where = `line ${i + 1}`;
      const [hash, principal, extra] = line.split(/\s+/);
      if (!/^[0-9a-fA-F]{64}$/.test(hash!))
        throw fileError(
          file,
          where,
          "must start with the SHA-256 of a token in hex (64 characters), not the token itself",
        );
      if (principal === undefined || !PRINCIPAL.test(principal) || extra !== undefined)
        throw fileError(
          file,
          where,
          "must be SHA256HEX PRINCIPAL, the principal one word of printable characters",
        );
      const key = hash!.toLowerCase();
      if (byHash.has(key)) throw fileError(file, where, "repeats a token hash of an earlier line");
      byHash.set(key, principal);
    }
    return new TokenTable(byHash);
  }

  /** The principal a token belongs to, or undefined. */
  lookup(token: string): string | undefined {
    return this.#byHash.get(tokenHash(token));
  }
}
