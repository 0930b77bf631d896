/** The non-empty items of a comma-separated list, trimmed (`--shards 1,4,8`). */
export const list = (s: string): string[] =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x !== "");

/** Command-line words separated by spaces or commas (`--broker-args`, NODE_OPTIONS). */
export const words = (s: string): string[] => list(s.replace(/\s+/g, ","));
