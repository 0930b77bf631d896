/**
 * Numbers with units, as flags, environment variables and config files write them: "30s",
 * "5m", "7d", "250ms", "1MiB", "16 mb", or a plain number. Units are case-insensitive and
 * spaces around the number and unit are allowed.
 */

const MiB = 1 << 20;

/** Duration units in milliseconds; no unit means milliseconds. */
export const TIME_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Size units in bytes (k, m, g are binary, as kib, mib, gib); no unit means bytes. */
export const BYTE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: MiB,
  mb: MiB,
  mib: MiB,
  g: 1024 * MiB,
  gb: 1024 * MiB,
  gib: 1024 * MiB,
};

const QUANTITY = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/;

/**
 * A non-negative number with an optional unit from `units`, times that unit; undefined when
 * the text is not one. Fractions are kept ("1.5ms" is 1.5): callers decide whether to round.
 */
export function parseQuantity(text: string, units: Readonly<Record<string, number>>): number | undefined {
  const m = QUANTITY.exec(text);
  const unit = m?.[2]?.toLowerCase() ?? "";
  // Own keys only: "5constructor" is no quantity.
  if (!m || !Object.hasOwn(units, unit)) return undefined;
  return Number(m[1]) * units[unit]!;
}

/** Milliseconds of a duration ("30s", "5m", "7d", "250ms", plain ms), or undefined. */
export function parseDuration(text: string): number | undefined {
  return parseQuantity(text, TIME_UNITS);
}
