#!/usr/bin/env node
import { asNerveBusError } from "../core/index.js";
import { adminCommand } from "./admin.js";
import { CONNECTION_USAGE } from "./connect.js";
import { messageCommand, messagesCommand } from "./messages.js";
import { publishCommand } from "./publish.js";
import { schemaCommand } from "./schema.js";
import { serveCommand } from "./serve.js";
import { tailCommand } from "./tail.js";

const USAGE = `nervebus: a persistent message broker on MySQL or embedded SQLite

usage:
  nervebus serve   [--listen HOST:PORT] [--store sqlite:PATH|mysql://USER:PASS@HOST:PORT/DB[,mysql://…]] [options]
  nervebus publish --server HOST:PORT --topic T [--data TEXT ...] [--attr K=V ...] [--ordering-key K] [--priority urgent|normal|bulk] [--pack-size N] [--stream]
                   (without --data: one message per line of standard input)
  nervebus tail    --server HOST:PORT --topic T --subscription S [--from earliest|latest|SEQ] [--count N] [--json]
  nervebus topic   list|get|create|update|delete [NAME] [--shards N] [--retention 7d] [--dedup-window 2m] …
  nervebus sub     list|get|create|update|delete|pause|resume|purge|seek TOPIC [NAME] [--max-delivery-attempts N] …
  nervebus stats   TOPIC
  nervebus messages --topic T [--from-seq N] [--to-seq N] [--since TIME] [--until TIME] [--ordering-key K]
                   [--message-id ID] [--trace-id HEX] [--attr K=V ...] [--limit N] [--scan-limit N] [--deliveries] [--json]
  nervebus message --topic T --seq N [--json]
  nervebus schema  set|get|clear --topic T [--type PKG.MESSAGE --descriptor-set FILE]
  nervebus locate  TOPIC            (several brokers: which one serves TOPIC)
  nervebus cluster                  (several brokers: each one and the topics it owns)
  nervebus drain-broker             (several brokers: hand the --server broker's topics to the others)
  nervebus move-topic --topic T --to HOST:PORT/DATABASE   (several MySQL databases in --store)

publish, tail, topic, sub, stats, messages, message, schema, locate, cluster and drain-broker take the connection flags:
${CONNECTION_USAGE}

Run 'nervebus serve --help' for every broker setting.`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  serve: serveCommand,
  publish: publishCommand,
  tail: tailCommand,
  topic: (args) => adminCommand("topic", args),
  sub: (args) => adminCommand("sub", args),
  stats: (args) => adminCommand("stats", args),
  messages: messagesCommand,
  message: messageCommand,
  schema: schemaCommand,
  locate: (args) => adminCommand("locate", args),
  cluster: (args) => adminCommand("cluster", args),
  "drain-broker": (args) => adminCommand("drain-broker", args),
  "move-topic": (args) => adminCommand("move-topic", args),
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (run === undefined) {
    process.stderr.write(
      `nervebus: unknown command ${JSON.stringify(command)}; expected serve, publish, tail, topic, sub, stats, messages, message, schema, locate, cluster, drain-broker or move-topic\n`,
    );
    return 2;
  }
  return run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // parseArgs errors and NerveBusErrors carry a message meant for the user: one line, no stack.
    const message = (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")
      ? (err as Error).message
      : asNerveBusError(err).message;
    process.stderr.write(`nervebus: ${message}\n`);
    process.exitCode = 2;
  },
);
