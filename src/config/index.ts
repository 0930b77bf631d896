/** Typed configuration: defaults < file < environment < flags. */
export { type Config, envName, flagName, loadConfig, OPTIONS, type OptionSpec } from "./config.js";
