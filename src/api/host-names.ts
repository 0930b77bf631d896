/**
 * Host names as the network sees them: one canonical spelling (so `127.1`, `LOCALHOST.` and
 * `[0:0::1]` compare equal to what they mean), and which of them only this machine can reach.
 */

/**
 * The canonical form of a host name or IP literal, as WHATWG URL parsing gives it (lowercase,
 * IDNA, dotted-quad IPv4, bracketed compressed IPv6, one trailing dot dropped), or undefined when
 * it is not a host. A bare IPv6 address (`::1`, as in `--listen ::1:7070`) gets its brackets.
 */
export function canonicalHostname(host: string): string | undefined {
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  // Characters that would make URL parsing read a path, user info, an escape or a port into it.
  if (h === "" || /[\s/\\?#@%]/.test(h) || /:[^\]]*$/.test(h)) return undefined;
  try {
    const name = new URL(`http://${h}`).hostname;
    return name.endsWith(".") ? name.slice(0, -1) : name;
  } catch {
    return undefined;
  }
}

/** Whether a canonical host name always means this machine: localhost, 127.0.0.0/8, ::1. */
export function isLoopbackHostname(name: string): boolean {
  return (
    name === "localhost" ||
    /^127\.\d+\.\d+\.\d+$/.test(name) ||
    name === "[::1]" ||
    // ::ffff:127.x.y.z, which URL parsing writes in hex
    /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(name)
  );
}

/** Whether a canonical host name is an IP literal (a name no DNS answer can redirect). */
export function isIpLiteral(name: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(name) || name.startsWith("[");
}

/** Whether a listen host means every address of the machine (0.0.0.0, ::, or none given). */
export function isWildcardHostname(name: string | undefined): boolean {
  return name === undefined || name === "0.0.0.0" || name === "[::]";
}

/** The host part of a HOST:PORT listen address, canonical (undefined for "" or unparsable). */
export function listenHostname(listen: string): string | undefined {
  return canonicalHostname(listen.slice(0, listen.lastIndexOf(":")));
}

/** Whether a HOST:PORT listen address accepts connections from this machine only. */
export function listensOnLoopbackOnly(listen: string): boolean {
  const name = listenHostname(listen);
  return name !== undefined && isLoopbackHostname(name);
}
