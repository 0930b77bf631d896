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
