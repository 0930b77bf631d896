import { NerveBusError } from "../core/index.js";

/** HOST:PORT with a numeric port; the host is whatever precedes the last colon (IPv6 included). */
const HOST_PORT = /^.+:\d+$/;

/**
 * Throws INVALID_ARGUMENT naming `--flag` unless `address` is HOST:PORT, or "off" when
 * `offAllowed` (a listener that can be switched off).
 */
export function checkHostPort(flag: string, address: string, offAllowed = false): void {
  if (HOST_PORT.test(address) || (offAllowed && address === "off")) return;
  throw new NerveBusError(
    "invalid_argument",
    `--${flag}: must be HOST:PORT${offAllowed ? " or off" : ""}, got ${JSON.stringify(address)}`,
  );
}
