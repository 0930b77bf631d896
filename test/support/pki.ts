import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** PEM files of one certificate: the certificate and its key. */
export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

/** A throwaway certificate authority in a folder, made with the openssl command line. */
export class TestCa {
  readonly cert: string;
  readonly key: string;

  private constructor(
    readonly dir: string,
    readonly name: string,
  ) {
    this.cert = join(dir, `${name}.crt`);
    this.key = join(dir, `${name}.key`);
  }

  /** A new self-signed CA (EC P-256, valid two days) named `name`, files in `dir`. */
  static create(dir: string, name = "test-ca"): TestCa {
    const ca = new TestCa(dir, name);
    openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"], {
      keyout: ca.key,
      out: ca.cert,
      subj: `/CN=${name}`,
      days: "2",
    });
    return ca;
  }

  /** A certificate for the broker on 127.0.0.1 and localhost, with `cn` as subject. */
  server(cn: string, file = cn): CertFiles {
    return this.#issue(file, `/CN=${cn}`, [
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "extendedKeyUsage=serverAuth",
    ]);
  }

  /**
   * A broker's certificate for a cluster with mTLS: it serves (127.0.0.1, localhost) and is
   * the broker's client certificate toward the other brokers.
   */
  broker(cn: string, file = cn): CertFiles {
    return this.#issue(file, `/CN=${cn}`, [
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "extendedKeyUsage=serverAuth,clientAuth",
    ]);
  }

  /** A client certificate with subject CN `cn` (or no CN and a URI SAN when `uri` is given). */
  client(cn: string | undefined, options: { uri?: string; file?: string } = {}): CertFiles {
    const ext = ["extendedKeyUsage=clientAuth"];
    if (options.uri !== undefined) ext.push(`subjectAltName=URI:${options.uri}`);
    return this.#issue(
      options.file ?? cn ?? "client",
      cn === undefined ? "/O=nervebus-tests" : `/CN=${cn}`,
      ext,
    );
  }

  #issue(file: string, subj: string, extensions: string[]): CertFiles {
    const out = { cert: join(this.dir, `${file}.crt`), key: join(this.dir, `${file}.key`) };
    const csr = join(this.dir, `${file}.csr`);
    openssl(
      [
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        ...extensions.flatMap((e) => ["-addext", e]),
      ],
      { keyout: out.key, out: csr, subj },
    );
    openssl(["x509", "-req", "-copy_extensions", "copy", "-CAcreateserial"], {
      in: csr,
      CA: this.cert,
      CAkey: this.key,
      out: out.cert,
      days: "2",
    });
    return out;
  }
}

function openssl(args: string[], named: Record<string, string>): void {
  execFileSync("openssl", [...args, ...Object.entries(named).flatMap(([k, v]) => [`-${k}`, v])], {
    stdio: ["ignore", "ignore", "pipe"],
  });
}

/** A file's bytes (for grpc-js credentials). */
export function pem(path: string): Buffer {
  return readFileSync(path);
}
