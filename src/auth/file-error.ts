import { NerveBusError } from "../core/index.js";
import { jsonErrorOffset } from "./json-error-offset.js";

/**
 * The error for a bad security file: names the file and where in it (a line, or a key path
 * such as `principals.alice[0].allow`), so start-up and reload messages point at the fix.
 */
export function fileError(file: string, where: string, problem: string): NerveBusError {
  return new NerveBusError("invalid_argument", `${file}${where === "" ? "" : ` ${where}`}: ${problem}`);
}

/** JSON.parse that names the line and column of a syntax error. Throws the fileError. */
export function parseJsonFile(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    // V8's message quotes the whole text, or an offset, or neither: the reason is kept.
    const message = (err as Error).message.replace(/, ".*" is not valid JSON$/s, "");
    const offset = jsonErrorOffset(text);
    if (offset < 0) throw fileError(file, "", `not valid JSON (${message})`);
    const before = text.slice(0, offset);
    const line = before.split("\n").length;
    const column = before.length - before.lastIndexOf("\n");
    throw fileError(
      file,
      `line ${line} column ${column}`,
      `not valid JSON (${message.replace(/ in JSON at position \d+.*$/, "")})`,
    );
  }
}
