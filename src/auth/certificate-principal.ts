import type { PeerCertificate } from "node:tls";

/** SAN kinds that name a client, in the order they are preferred when the subject has no CN. */
const SAN_KINDS = ["URI", "DNS", "email"];

/**
 * The principal a verified client certificate stands for: its subject CN, or, when it has none
 * (SPIFFE and other SAN-only certificates), its first URI, then DNS, then email SAN. Undefined
 * when the certificate names nobody.
 */
export function certificatePrincipal(cert: PeerCertificate): string | undefined {
  const cn = cert.subject?.CN as string | string[] | undefined;
  const first = Array.isArray(cn) ? cn[0] : cn;
  if (first !== undefined && first !== "") return first;
  // "DNS:a.example, URI:spiffe://x/y": node joins the entries with ", ".
  const entries = (cert.subjectaltname ?? "").split(", ").map((e) => {
    const colon = e.indexOf(":");
    return { kind: e.slice(0, colon), value: e.slice(colon + 1) };
  });
  for (const kind of SAN_KINDS) {
    const hit = entries.find((e) => e.kind === kind && e.value !== "");
    if (hit !== undefined) return hit.value;
  }
  return undefined;
}
