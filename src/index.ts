/** NerveBus as a library: start a broker in-process (tests, embedding). */
export { type Config, loadConfig } from "./config/index.js";
export { type NerveBus, startNerveBus } from "./nervebus.js";
