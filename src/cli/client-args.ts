import { type ParseArgsConfig, parseArgs } from "node:util";
import { NerveBusError } from "../core/index.js";
import { CONNECTION_FLAGS } from "./connect.js";

/** Parses a client command's flags strictly (no positionals): `options` and CONNECTION_FLAGS. */
export function parseClientArgs<O extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: O,
) {
  return parseArgs({ args, strict: true, options: { ...CONNECTION_FLAGS, ...options } }).values;
}

/** The value of a flag the command cannot do without; INVALID_ARGUMENT naming it when missing. */
export function requiredFlag<T>(value: T | undefined, flag: string): T {
  if (value === undefined) throw new NerveBusError("invalid_argument", `--${flag} is required`);
  return value;
}

/**
 * A flag's whole number; INVALID_ARGUMENT naming it for anything else, or past 2^53 (it would be
 * rounded: 99999999999999999999999 became 1e+23, which no uint64 field takes).
 */
export function wholeNumberFlag(flag: string, value: string): number {
  if (!/^\d+$/.test(value))
    throw new NerveBusError(
      "invalid_argument",
      `--${flag}: expected a whole number, got ${JSON.stringify(value)}`,
    );
  const n = Number(value);
  if (!Number.isSafeInteger(n))
    throw new NerveBusError(
      "invalid_argument",
      `--${flag}: must be at most ${Number.MAX_SAFE_INTEGER}, got ${JSON.stringify(value)}`,
    );
  return n;
}
