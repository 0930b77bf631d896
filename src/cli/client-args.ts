import { type ParseArgsConfig, parseArgs } from "node:util";
import { NerveBusError } from "../core/index.js";

/** The flags every client command takes: the broker to talk to (the default listen address). */
export const CLIENT_FLAGS = { server: { type: "string", default: "127.0.0.1:7070" } } as const;

/** Parses a client command's flags strictly (no positionals): `options` and CLIENT_FLAGS. */
export function parseClientArgs<O extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: O,
) {
  return parseArgs({ args, strict: true, options: { ...CLIENT_FLAGS, ...options } }).values;
}

/** The value of a flag the command cannot do without; INVALID_ARGUMENT naming it when missing. */
export function requiredFlag<T>(value: T | undefined, flag: string): T {
  if (value === undefined) throw new NerveBusError("invalid_argument", `--${flag} is required`);
  return value;
}
