import { NerveBusClient } from "@nervebus/client";

const client = new NerveBusClient(process.env.NERVEBUS_ADDRESS ?? "127.0.0.1:7070");

// Publish: calls are batched into SendPack calls; each resolves once the message is durable.
for (const n of [1, 2, 3]) {
  const result = await client.publish("quickstart-ts", { data: `hello ${n}`, attributes: { n: String(n) } });
  console.log(`published seq=${result.seq} trace=${result.traceId}`);
}

// Subscribe: the handler runs per message; returning acks it, throwing nacks it for redelivery.
let received = 0;
const subscriber = client.subscribe(
  "quickstart-ts",
  "quickstart-ts-sub",
  async (msg) => {
    console.log(`received seq=${msg.seq} data=${msg.text()} n=${msg.attributes.n}`);
    if (++received === 3) void subscriber.close(); // stops after this handler returns
  },
  { start: "earliest", concurrency: 4 },
);

await subscriber.done;
await client.close();
