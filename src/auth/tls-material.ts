import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { NerveBusError } from "../core/index.js";

/** The PEM files of the broker's TLS: its certificate chain and key, and the CA of client certificates. */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  /** "" when clients need no certificate. */
  readonly clientCa: string;
}

/** What the TLS server contexts are made of, checked to fit together. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** CA bundle of client certificates; undefined without mTLS. */
  readonly ca: Buffer | undefined;
  /** When the broker's own certificate expires (ms since epoch). */
  readonly notAfter: number;
}

/** The raw bytes of the files, to tell whether anything changed since the last read. */
export function readTlsFiles(files: TlsFiles): Buffer[] {
  const read = (flag: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new NerveBusError("invalid_argument", `--${flag} ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  };
  const bytes = [read("tls-cert", files.cert), read("tls-key", files.key)];
  if (files.clientCa !== "") bytes.push(read("tls-client-ca", files.clientCa));
  return bytes;
}

/**
 * Checks the files' bytes (from readTlsFiles) the way a TLS server will use them: the PEM
 * parses, the key belongs to the certificate, the CA bundle holds certificates. Throws
 * NerveBusError (invalid_argument) naming the flag and file; the previous material stays in use
 * when a reload fails this.
 */
export function toTlsMaterial(files: TlsFiles, [cert, key, ca]: Buffer[]): TlsMaterial {
  let notAfter: number;
  try {
    notAfter = Date.parse(new X509Certificate(cert!).validTo);
  } catch (err) {
    throw new NerveBusError(
      "invalid_argument",
      `--tls-cert ${files.cert}: not a PEM certificate (${(err as Error).message})`,
    );
  }
  try {
    createSecureContext({ cert: cert!, key: key! });
  } catch (err) {
    throw new NerveBusError(
      "invalid_argument",
      `--tls-key ${files.key}: does not fit --tls-cert ${files.cert} (${(err as Error).message})`,
    );
  }
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
      createSecureContext({ ca });
    } catch (err) {
      throw new NerveBusError(
        "invalid_argument",
        `--tls-client-ca ${files.clientCa}: not a PEM CA bundle (${(err as Error).message})`,
      );
    }
  }
  return { cert: cert!, key: key!, ca, notAfter };
}
