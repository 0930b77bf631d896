/** A request target read as a path: its segments, percent-decoded, or why it cannot be. */
export type RequestPath = { readonly segments: readonly string[] } | { readonly problem: string };

/**
 * Splits an HTTP request target (`/api/topics/a%2Fb/…?x`) into decoded path segments: the query
 * and fragment are dropped, segments are split on "/" before decoding (so %2F stays inside a
 * name), and nothing is normalised (no dot segments, no merged slashes: a route matches the
 * path exactly as sent). Never throws: a target that is not a path (absolute-form, `*`) or a
 * segment that is not valid percent-encoded UTF-8 gives a problem naming it.
 */
export function parseRequestPath(target: string): RequestPath {
  if (!target.startsWith("/"))
    return { problem: `request target ${clip(target)} is not a path (it must start with /)` };
  const end = target.search(/[?#]/);
  const raw = (end < 0 ? target : target.slice(0, end)).split("/").slice(1);
  const segments: string[] = [];
  for (const [i, s] of raw.entries()) {
    try {
      segments.push(decodeURIComponent(s));
    } catch {
      return {
        problem: `path segment ${i + 1} (${clip(s)}) is not valid percent-encoded UTF-8`,
      };
    }
  }
  return { segments };
}

/** A piece of client input for an error message: quoted, and short (a target may be 16 KiB). */
function clip(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}
