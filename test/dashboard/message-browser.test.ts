import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type Browser, chromium } from "playwright-core";
import { tokenHash } from "../../src/auth/index.js";
import type { NerveBus } from "../../src/nervebus.js";
import { startBroker, TestClient } from "../support/broker.js";
import { CHROMIUM, CHROMIUM_ARGS, openPage, skip } from "./browser.js";
import { consume, createSubscription, createTopic, waitFor } from "./support.js";

/** The repository root, from dist/test/dashboard/. */
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** Markup in a payload, an attribute value and an ordering key: it must show as text, never run. */
const EVIL = `<img src=x onerror="window.__pwned=1"><b>bold</b> & "q"`;

/**
 * A broker with topic "orders": five messages (seq 3 carries EVIL everywhere a user can put
 * text), subscription "billing" holding seq 3 leased after acking 1–2, and "audit" untouched.
 */
async function brokerWithMessages(): Promise<{
  bus: NerveBus;
  store: string;
  client: TestClient;
  trace3: string;
  stop: () => Promise<void>;
}> {
  const dir = mkdtempSync(join(tmpdir(), "nb-browser-page-"));
  const store = `sqlite:${join(dir, "nb.db")}`;
  const bus = await startBroker(store);
  const client = new TestClient(bus.address);
  await createTopic(client, "orders");
  await createSubscription(client, "orders", "billing");
  await createSubscription(client, "orders", "audit");
  const r = await client.publish("orders", [
    "first",
    { data: Buffer.from("second"), attributes: { color: "red" } },
    { data: Buffer.from(EVIL), attributes: { note: EVIL, color: "red" }, orderingKey: EVIL },
    "fourth",
    { data: Buffer.from("fifth"), attributes: { color: "red" } },
  ]);
  const stream = consume(client, "orders", "billing", "worker-1", 3);
  await stream.until(() => stream.deliveries.length >= 3);
  stream.send({ ackSeqs: [1n, 2n] });
  const trace3 = r.results[2]!.traceId;
  return {
    bus,
    store,
    client,
    trace3,
    stop: async () => {
      stream.cancel();
      client.close();
      await bus.stop();
    },
  };
}

describe("message browser in headless Chromium", () => {
  let browser: Browser | undefined;
  before(async () => {
    if (skip) return;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 20_000 });
  });
  after(async () => {
    await browser?.close();
  });

  test("a link with a trace id finds the message, its deliveries and acks; user data stays text", {
    skip,
    timeout: 60_000,
  }, async () => {
    const { bus, trace3, stop } = await brokerWithMessages();
    try {
      // What a tracing dashboard links to: the topic and the trace id in the fragment.
      const { page, problems } = await openPage(
        browser!,
        `http://${bus.httpAddress}/messages#topic=orders&trace_id=${trace3}`,
      );
      await page.locator('tr.msg[data-seq="3"]').waitFor();
      assert.equal(await page.locator("tr.msg").count(), 1, "only the trace's message");
      const row = page.locator('tr.msg[data-seq="3"]');
      assert.equal(await row.locator('[data-field="payload"]').textContent(), EVIL);
      // billing holds 3 (leased to worker-1); audit took nothing yet.
      assert.equal(await row.locator('.badge[data-sub="billing"]').getAttribute("data-state"), "leased");
      assert.equal(await row.locator('.badge[data-sub="audit"]').getAttribute("data-state"), "not_delivered");

      await row.click();
      await page.locator("#detail h3").first().waitFor();
      assert.equal(await page.locator("#payload").textContent(), EVIL);
      const billing = page.locator('#detail tr[data-sub="billing"]');
      assert.match((await billing.textContent()) ?? "", /leased.*worker-1/);
      assert.match((await page.locator("#detail").textContent()) ?? "", /Attribute note/);

      // A search from the form: attribute color=red gives 2, 3 and 5; seq 1 shows acked.
      await page.locator("#clear").click();
      await page.locator("#f-topic").fill("orders");
      await page.locator("#f-attr").fill("color=red");
      await page.locator("#go").click();
      await waitFor("three red messages", async () =>
        (await page.locator("tr.msg").count()) === 3 ? true : undefined,
      );
      assert.deepEqual(
        await page.locator("tr.msg").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-seq"))),
        ["2", "3", "5"],
      );
      await page.locator("#f-attr").fill("");
      await page.locator("#f-to_seq").fill("1");
      await page.locator("#go").click();
      await waitFor("seq 1 acked on billing", async () =>
        (await page.locator('tr.msg[data-seq="1"] .badge[data-sub="billing"]').getAttribute("data-state")) ===
        "acked"
          ? true
          : undefined,
      );
      assert.match(page.url(), /#topic=orders&to_seq=1$/, "the search is in the fragment, to link to");

      assert.equal(await page.locator("img").count(), 0, "no element made from user data");
      assert.equal(await page.locator("main b").count(), 0, "no element made from user data");
      assert.equal(await page.evaluate("typeof window.__pwned"), "undefined", "no script from user data ran");
      // A bad search is reported, not thrown away.
      await page.locator("#f-trace_id").fill("not-a-trace");
      await page.locator("#go").click();
      await page.locator("#error").getByText("trace_id: must be 32 lowercase hex digits").waitFor();
      assert.deepEqual(problems, []);
      if (process.env.NERVEBUS_UPDATE_SCREENSHOT === "1") {
        await page.locator("#clear").click();
        await page.locator("#f-topic").fill("orders");
        await page.locator("#go").click();
        await page.locator('tr.msg[data-seq="5"]').waitFor();
        await page.locator('tr.msg[data-seq="3"]').click();
        await page.locator("#detail h3").first().waitFor();
        writeFileSync(
          join(ROOT, "docs/message-browser.png"),
          await page.screenshot({ type: "png", fullPage: true }),
        );
      }
      await page.close();
    } finally {
      await stop();
    }
  });
});

test("GET /messages and its JSON: CSP and security headers, bounded searches, clear errors", async () => {
  const { bus, stop } = await brokerWithMessages();
  try {
    const base = `http://${bus.httpAddress}`;
    const page = await fetch(`${base}/messages`);
    assert.equal(page.status, 200);
    const csp = page.headers.get("content-security-policy") ?? "";
    assert.match(csp, /script-src 'sha256-[^']+'; style-src 'sha256-/);
    assert.match(csp, /connect-src 'self'/);
    assert.equal(page.headers.get("x-frame-options"), "DENY");
    const html = await page.text();
    assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)=/i, "no external resources");
    assert.doesNotMatch(
      html,
      /innerHTML|insertAdjacentHTML|document\.write/,
      "user data never parsed as HTML",
    );

    const get = async (path: string) => {
      const res = await fetch(`${base}${path}`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const list = await get("/api/topics/orders/messages?attr=color%3Dred&page_size=2&deliveries=1");
    assert.equal(list.status, 200);
    const messages = list.body.messages as { seq: number; dataText: string; deliveries: unknown[] }[];
    assert.deepEqual(
      messages.map((m) => m.seq),
      [2, 3],
    );
    assert.equal(messages[1]!.dataText, EVIL);
    assert.equal(list.body.nextSeq, 4);
    const one = await get("/api/topics/orders/messages/3");
    assert.equal((one.body.message as { orderingKey: string }).orderingKey, EVIL);

    const bad: [string, number, RegExp][] = [
      ["/api/topics/orders/messages?scan_limit=1000000", 400, /scan_limit: one call examines at most 100000/],
      ["/api/topics/orders/messages?page_size=5000", 400, /page_size: must be 1–1000/],
      ["/api/topics/orders/messages?from_seq=abc", 400, /from_seq: expected a whole number/],
      ["/api/topics/orders/messages?since=yesterday", 400, /since: expected an ISO time/],
      ["/api/topics/orders/messages/abc", 400, /seq: expected a seq ≥ 1/],
      ["/api/topics/orders/messages/99", 404, /never published/],
      ["/api/topics/nope/messages", 404, /topic nope does not exist/],
    ];
    for (const [path, status, error] of bad) {
      const r = await get(path);
      assert.equal(r.status, status, path);
      assert.match(String(r.body.error), error, path);
    }
    const post = await fetch(`${base}/api/topics/orders/messages`, { method: "POST" });
    assert.equal(post.status, 405);
  } finally {
    await stop();
  }
});

test("with tokens: the JSON wants admin on the topic and shows only the subscriptions the principal may administer", async () => {
  const { bus, store, stop } = await brokerWithMessages();
  // billing's ack of seq 1 is applied (and so persisted at the stop) before the restart.
  await waitFor("seq 1 acked on billing", async () => {
    const r = await fetch(`http://${bus.httpAddress}/api/topics/orders/messages/1`);
    const m = (await r.json()) as { message: { deliveries: { subscription: string; state: string }[] } };
    return m.message.deliveries.some((d) => d.subscription === "billing" && d.state === "acked")
      ? true
      : undefined;
  });
  await stop();
  const dir = mkdtempSync(join(tmpdir(), "nb-browser-auth-"));
  const token = "browse-token-0123456789";
  writeFileSync(join(dir, "tokens"), `${tokenHash(token)} ops\n`);
  writeFileSync(
    join(dir, "policy.json"),
    JSON.stringify({
      principals: { ops: [{ allow: ["admin"], topics: ["orders"], subscriptions: ["billing"] }] },
    }),
  );
  const secured = await startBroker(store, {
    authTokens: join(dir, "tokens"),
    authPolicy: join(dir, "policy.json"),
  });
  try {
    const base = `http://${secured.httpAddress}/api/topics`;
    const auth = { authorization: `Bearer ${token}` };
    assert.equal((await fetch(`${base}/orders/messages`)).status, 401, "no token");
    const list = await fetch(`${base}/orders/messages?deliveries=1&to_seq=1`, { headers: auth });
    assert.equal(list.status, 200);
    const body = (await list.json()) as {
      messages: { deliveries: { subscription: string; state: string }[] }[];
    };
    assert.deepEqual(
      body.messages[0]!.deliveries.map((d) => [d.subscription, d.state]),
      [["billing", "acked"]],
      "audit is not the principal's to see",
    );
    const one = (await (await fetch(`${base}/orders/messages/1`, { headers: auth })).json()) as {
      message: { deliveries: { subscription: string }[] };
    };
    assert.deepEqual(
      one.message.deliveries.map((d) => d.subscription),
      ["billing"],
    );
    assert.equal((await fetch(`${base}/other/messages`, { headers: auth })).status, 403, "another topic");
  } finally {
    await secured.stop();
  }
});
