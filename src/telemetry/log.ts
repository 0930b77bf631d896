/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A structured logger: one JSON object per line. Payloads are never passed to it. */
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** A JSON-lines logger writing to `out` (stderr by default), dropping lines below `level`. */
export function jsonLogger(level: LogLevel, out: NodeJS.WritableStream = process.stderr): Logger {
  const min = RANK[level];
  return (lvl, msg, fields) => {
    if (RANK[lvl] < min) return;
    out.write(`${JSON.stringify({ level: lvl, time: new Date().toISOString(), msg, ...fields })}\n`);
  };
}
