/** Typed configuration: defaults < file < environment < flags. */
export { type Config, envName, flagName, loadConfig, OPTIONS, type OptionSpec } from "./config.js";
export { checkHostPort } from "./host-port.js";
export { parseDuration } from "./units.js";
