/** Typed configuration: defaults < file < environment < flags. */
export { envName, flagName, loadConfig } from "./config.js";
export { checkHostPort } from "./host-port.js";
export { type Config, OPTIONS, type OptionSpec } from "./options.js";
export { parseDuration } from "./units.js";
