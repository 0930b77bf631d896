import type { IncomingHttpHeaders } from "node:http";
import {
  canonicalHostname,
  isIpLiteral,
  isLoopbackHostname,
  isWildcardHostname,
  listenHostname,
} from "./host-names.js";

/**
 * The header the status page's script sends with every state-changing request. A cross-site
 * form cannot set a header, and a cross-site fetch that sets one needs a CORS preflight, which
 * the broker never grants.
 */
export const REQUEST_HEADER = "X-NerveBus-Request";

/** Host name and port of a Host header value, or undefined when it is not `name[:port]`. */
function parseHost(value: string): { name: string; port: string } | undefined {
  const m = /^(\[[^\]]*\]|[^:[\]]*)(?::(\d{1,5}))?$/.exec(value);
  const name = m ? canonicalHostname(m[1]!) : undefined;
  return name === undefined ? undefined : { name, port: m![2] ?? "" };
}

/** A header's value; repeated ones joined as node joins most headers (so they never match). */
function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(", ") : value;
}

/**
 * Which Host headers the HTTP port answers: its own listen name, loopback names when it listens
 * on loopback, any IP literal or loopback name when it listens on every address, and the
 * `allowed` names. A DNS name outside these is refused, so a page whose DNS answer is rebound to
 * the broker's address (DNS rebinding) gets nothing from it.
 */
export class HostRule {
  readonly #listen: string | undefined;
  readonly #allowed = new Set<string>();
  /** Allowed names that are not host names, for the caller to refuse at start-up. */
  readonly badNames: string[] = [];

  constructor(listen: string, allowed: readonly string[]) {
    this.#listen = listenHostname(listen);
    for (const a of allowed) {
      const name = canonicalHostname(a);
      if (name === undefined) this.badNames.push(a);
      else this.#allowed.add(name);
    }
  }

  /**
   * Why a request with this Host header is refused, or undefined when it is accepted. A missing
   * Host is accepted: only a browser can be turned against the broker, and browsers always send
   * one.
   */
  problem(host: string | undefined): string | undefined {
    if (host === undefined) return undefined;
    const parsed = parseHost(host);
    if (parsed === undefined) return `Host header ${JSON.stringify(host)} is not a host name`;
    const { name } = parsed;
    const listen = this.#listen;
    const ok =
      name === listen ||
      this.#allowed.has(name) ||
      (listen !== undefined && isLoopbackHostname(listen) && isLoopbackHostname(name)) ||
      (isWildcardHostname(listen) && (isIpLiteral(name) || isLoopbackHostname(name)));
    return ok
      ? undefined
      : `Host header ${JSON.stringify(host)} is not an address of this broker (add the name to --http-allowed-hosts if it is)`;
  }
}

/**
 * Whether an Origin header names the host the request was sent to. https counts too: behind a
 * TLS-terminating proxy the page's origin is https with the same host. "null" (sandboxed frames,
 * file: pages) and garbage are foreign.
 */
function sameOrigin(origin: string, host: string | undefined): boolean {
  const to = host === undefined ? undefined : parseHost(host);
  let from: URL;
  try {
    from = new URL(origin);
  } catch {
    return false;
  }
  if (to === undefined || (from.protocol !== "http:" && from.protocol !== "https:")) return false;
  const defaultPort = from.protocol === "https:" ? "443" : "80";
  return (
    canonicalHostname(from.hostname) === to.name && (from.port || defaultPort) === (to.port || defaultPort)
  );
}

/**
 * Why a state-changing request is refused as cross-site, or undefined when it comes from the
 * status page itself or from a non-browser client that set REQUEST_HEADER. Checks, in order:
 * Sec-Fetch-Site (when the browser sends it) is same-origin; Origin (when sent) is this very
 * host; REQUEST_HEADER is "1".
 */
export function crossSiteProblem(headers: IncomingHttpHeaders): string | undefined {
  const site = headerValue(headers["sec-fetch-site"]);
  if (site !== undefined && site !== "same-origin")
    return `cross-site request refused (Sec-Fetch-Site: ${site})`;
  const origin = headerValue(headers.origin);
  if (origin !== undefined && !sameOrigin(origin, headerValue(headers.host)))
    return `cross-origin request refused (Origin ${origin} is not this broker's page)`;
  const marker = headerValue(headers[REQUEST_HEADER.toLowerCase()]);
  if (marker !== "1")
    return `state-changing requests need the header ${REQUEST_HEADER}: 1 (the status page sends it; a cross-site form cannot)`;
  return undefined;
}
