import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { NerveBusClient } from "../../clients/ts/src/index.js";
import { PeerChannels } from "../../src/api/peer-channels.js";
import { connect } from "../../src/cli/connect.js";

/** HTTP/2's own initial window, what grpc-js grants unless told otherwise. */
const HTTP2_DEFAULT_WINDOW = 65_535;
const FOUR_MIB = 4 << 20;

interface Granted {
  /** Per stream: the SETTINGS_INITIAL_WINDOW_SIZE the client sent. */
  readonly stream: number;
  /** The connection: what the server may send before the client's next WINDOW_UPDATE. */
  readonly connection: number;
}

/**
 * The flow-control windows a gRPC channel grants the server it connects to, as a plain HTTP/2
 * server reads them from the channel's SETTINGS and WINDOW_UPDATE frames (it answers any call
 * with a gRPC status, so a channel that makes one gets an answer): `open` connects a channel to
 * the address. The connection's window is read once grpc-js has widened it (a WINDOW_UPDATE
 * right after SETTINGS), or as it stands after 5 s.
 */
async function grantedWindows(open: (address: string) => Promise<() => void>): Promise<Granted> {
  const server = http2.createServer();
  const sessions: http2.ServerHttp2Session[] = [];
  server.on("stream", (stream) =>
    stream.respond(
      { ":status": 200, "content-type": "application/grpc", "grpc-status": "12" },
      { endStream: true },
    ),
  );
  const granted = new Promise<Granted>((resolve) =>
    server.on("session", (session) => {
      sessions.push(session);
      session.once("remoteSettings", (settings) => {
        const stream = settings.initialWindowSize ?? HTTP2_DEFAULT_WINDOW;
        const until = Date.now() + 5000;
        const poll = () => {
          const connection = session.state.remoteWindowSize ?? 0;
          if (connection >= stream || Date.now() > until) resolve({ stream, connection });
          else setTimeout(poll, 10);
        };
        poll();
      });
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const close = await open(`127.0.0.1:${port}`);
  try {
    return await granted;
  } finally {
    close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sessions) s.destroy();
    });
  }
}

/**
 * At HTTP/2's 64 KiB a Receive stream made the broker stop after every 64 KiB until the
 * subscriber's event loop answered (grpc-js, unlike grpc-go and C-core, does not grow it): a
 * drain ran at ~490k msg/s where 4 MiB gives ~770k (BENCHMARKS.md). Every channel the broker's
 * code opens grants 4 MiB, per stream and per connection.
 */
test("the TypeScript client's channel grants a 4 MiB flow-control window", async () => {
  const granted = await grantedWindows(async (address) => {
    const client = new NerveBusClient(address);
    await client.admin.listTopics().catch(() => undefined);
    return () => void client.close();
  });
  assert.equal(granted.stream, FOUR_MIB);
  assert.ok(granted.connection >= FOUR_MIB, `connection window ${granted.connection}`);
});

test("a broker's channel to a peer (forwarded streams) grants a 4 MiB flow-control window", async () => {
  const granted = await grantedWindows(async (address) => {
    const peers = new PeerChannels(undefined, undefined, 64 << 20);
    const client = peers.client(address);
    await new Promise<void>((resolve, reject) =>
      client.waitForReady(Date.now() + 5000, (err) => (err ? reject(err) : resolve())),
    );
    return () => peers.close();
  });
  assert.equal(granted.stream, FOUR_MIB);
  assert.ok(granted.connection >= FOUR_MIB, `connection window ${granted.connection}`);
});

test("the CLI's channel (nervebus tail) grants a 4 MiB flow-control window", async () => {
  const granted = await grantedWindows(async (address) => {
    const clients = await connect({ server: address });
    return () => clients.close();
  });
  assert.equal(granted.stream, FOUR_MIB);
  assert.ok(granted.connection >= FOUR_MIB, `connection window ${granted.connection}`);
});
