/** Logs (and, later, traces and metrics). */
export { jsonLogger, type Logger, type LogLevel } from "./log.js";
