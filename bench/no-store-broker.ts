import { parseArgs } from "node:util";
import { listensOnLoopbackOnly } from "../src/api/index.js";
import { serveCommand } from "../src/cli/serve.js";
import { NullStore } from "./lib/null-store.js";

/**
 * The broker of the benchmark's no-store ceiling: `nervebus serve` with the same flags, on a
 * store that confirms every write at once and keeps nothing (lib/null-store.ts). Started only by
 * the suite (BrokerProcess with `noStore`); it refuses an address other machines can reach and
 * a --store flag, so it cannot stand in for a real broker by mistake, and it says what it is on
 * stderr.
 */
const args = process.argv.slice(2);
// Only the flags checked here are declared; serveCommand parses the rest strictly.
const { values } = parseArgs({
  args,
  options: { listen: { type: "string" }, "http-listen": { type: "string" }, store: { type: "string" } },
  strict: false,
});
const loopback = (flag: string) => {
  const v = values[flag];
  return typeof v === "string" && (v === "off" || listensOnLoopbackOnly(v));
};
if (
  !loopback("listen") ||
  (values["http-listen"] !== undefined && !loopback("http-listen")) ||
  values.store !== undefined
) {
  process.stderr.write(
    "no-store-broker: benchmark only; it needs --listen (and --http-listen) on a loopback address, and no --store (it keeps no message)\n",
  );
  process.exit(2);
}
process.stderr.write(
  "no-store-broker: NO STORE: every publish is confirmed at once and thrown away (benchmark ceiling only)\n",
);
serveCommand(args, { store: new NullStore() }).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`no-store-broker: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
