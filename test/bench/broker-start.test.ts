import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { BrokerProcess } from "../../bench/lib/broker.js";
import { freePort } from "../support/mariadb.js";

test("the suite's broker starts again on another HTTP port when the one it picked was taken meanwhile", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-bench-broker-"));
  // What an outgoing connection's ephemeral port does between the pick and the broker's bind.
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  const takenPort = (taken.address() as { port: number }).port;
  const picked: number[] = [];
  let b: BrokerProcess | undefined;
  try {
    b = await BrokerProcess.start({
      store: `sqlite:${join(dir, "nb.db")}`,
      httpPort: async () => {
        const port = picked.length === 0 ? takenPort : await freePort();
        picked.push(port);
        return port;
      },
    });
    assert.equal(picked.length, 2);
    assert.equal(b.httpAddress, `127.0.0.1:${picked[1]}`);
    const res = await fetch(`http://${b.httpAddress}/healthz`);
    assert.equal(res.status, 200);
  } finally {
    await b?.stop();
    taken.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
