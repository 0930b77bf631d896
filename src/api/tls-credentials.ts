import * as grpc from "@grpc/grpc-js";
import type { Security, TlsMaterial } from "../auth/index.js";

type CertificateProvider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/**
 * Hands the broker's current TLS material to grpc-js and every later reload of it, so a
 * rotated certificate (or client CA) serves new connections without a restart; connections
 * already open keep the one they were made with.
 */
class SecurityCertificates implements CertificateProvider {
  readonly #ca = new Set<CaListener>();
  readonly #identity = new Set<IdentityListener>();

  constructor(private material: TlsMaterial) {}

  update(material: TlsMaterial): void {
    this.material = material;
    for (const l of this.#identity) this.#sendIdentity(l);
    for (const l of this.#ca) this.#sendCa(l);
  }

  addCaCertificateListener(listener: CaListener): void {
    this.#ca.add(listener);
    // Later, not now: grpc-js registers its watcher of the server only after adding the
    // listener, and a value delivered before that would never reach the server.
    queueMicrotask(() => this.#sendCa(listener));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.#ca.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#identity.add(listener);
    queueMicrotask(() => this.#sendIdentity(listener));
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identity.delete(listener);
  }

  #sendCa(listener: CaListener): void {
    if (this.#ca.has(listener) && this.material.ca !== undefined)
      listener({ caCertificate: this.material.ca });
  }

  #sendIdentity(listener: IdentityListener): void {
    if (this.#identity.has(listener))
      listener({ certificate: this.material.cert, privateKey: this.material.key });
  }
}

/**
 * The gRPC port's credentials: plaintext without TLS; with it, TLS only (a plaintext client's
 * handshake fails), following reloads of the files, and with --tls-client-ca a client
 * certificate signed by that CA required and verified in the handshake.
 */
export function serverCredentials(security: Security | undefined): grpc.ServerCredentials {
  const material = security?.tls;
  if (security === undefined || material === undefined) return grpc.ServerCredentials.createInsecure();
  const certificates = new SecurityCertificates(material);
  security.onTlsChange((m) => certificates.update(m));
  const mutual = material.ca !== undefined;
  // The first argument is the identity provider, whatever grpc-js's parameter name says.
  return grpc.experimental.createCertificateProviderServerCredentials(
    certificates,
    mutual ? certificates : null,
    mutual,
  );
}
