/*
 * The TypeScript publisher of the shutdown test (test/shutdown/): publishes messages with ids
 * and payloads "<prefix>-0", "<prefix>-1", … to one topic with the repository's TypeScript
 * client (the built workspace package @nervebus/client), --window at a time, until its standard
 * input closes. After each window's answers it prints "answered N" (N messages published so
 * far); at the end it prints one JSON line: how many messages it published, how many of them
 * failed (with the first errors), and how many the broker reported as duplicates (a retry of a
 * pack that had landed before the broker went away).
 *
 *   node dist/test/shutdown/publish.js --addr 127.0.0.1:7070 --topic shutdown --prefix ts
 */
import { parseArgs } from "node:util";

/*
 * The parts of @nervebus/client this program uses. The package is imported at run time by a
 * specifier TypeScript does not resolve, because the repository's `tsc -p .` compiles this file
 * before clients/ts is built (as test/cross-language/consume.ts does).
 */
interface Publisher {
  publish(topic: string, message: { data: string; messageId: string }): Promise<{ outcome: string }>;
  close(): Promise<void>;
}
interface ClientModule {
  readonly NerveBusClient: new (
    address: string,
  ) => {
    publisher(options: { retry: { totalTimeoutMs: number } }): Publisher;
    close(): Promise<void>;
  };
}

const { values: args } = parseArgs({
  options: {
    addr: { type: "string" },
    topic: { type: "string", default: "shutdown" },
    prefix: { type: "string", default: "ts" },
    window: { type: "string", default: "100" },
  },
});
if (args.addr === undefined) throw new Error("--addr HOST:PORT is required");
const window = Number(args.window);

const clientModuleName: string = "@nervebus/client";
const { NerveBusClient } = (await import(clientModuleName)) as ClientModule;
const client = new NerveBusClient(args.addr);
// Retries go on for as long as a pack needs: the test, not the client, bounds the run.
const publisher = client.publisher({ retry: { totalTimeoutMs: 5 * 60_000 } });

let stop = false;
process.stdin.on("end", () => {
  stop = true;
});
process.stdin.resume();

const summary = { lang: "ts", published: 0, failed: 0, duplicates: 0, errors: [] as string[] };
while (!stop) {
  const results = Array.from({ length: window }, (_, j) => {
    const id = `${args.prefix}-${summary.published + j}`;
    return publisher.publish(args.topic, { data: id, messageId: id });
  });
  summary.published += window;
  for (const r of await Promise.allSettled(results)) {
    if (r.status === "rejected") {
      summary.failed++;
      if (summary.errors.length < 5) summary.errors.push(String(r.reason));
    } else if (r.value.outcome === "duplicate") {
      summary.duplicates++;
    }
  }
  process.stdout.write(`answered ${summary.published}\n`);
}
await publisher.close();
await client.close();
process.stdout.write(`${JSON.stringify(summary)}\n`);
