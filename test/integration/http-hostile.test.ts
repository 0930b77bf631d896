// The HTTP status port against hostile input: the requests that used to end the process, a few
// hundred seeded fuzzed requests on every route, cross-site and DNS-rebinding requests, and the
// security headers. Raw TCP (node:net) throughout where a client library would tidy the request.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, test } from "node:test";
import { loadConfig } from "../../src/config/index.js";
import { type NerveBus, startNerveBus } from "../../src/nervebus.js";
import type { Logger } from "../../src/telemetry/index.js";
import { healthClient, healthStatus, quietLog, startBroker, TestClient } from "../support/broker.js";
import { prng } from "../support/prng.js";

/** NERVEBUS_FUZZ_SEED=n replays another run; a failure message names the seed and the case. */
const SEED = Number(process.env.NERVEBUS_FUZZ_SEED ?? 20_240_612);
const BATCHES = 4;
const CASES_PER_BATCH = 100;
/** Time for each batch's fuzz: on a slow machine a batch stops early rather than run long. */
const BATCH_BUDGET_MS = 1_500;
const CONCURRENCY = 8;
const CANARY_TOPIC = "canary";

let bus: NerveBus;
let client: TestClient;
let host: string;
let port: number;
/** Exceptions and rejections nobody handled, which would have ended a broker run by the CLI. */
const escaped: unknown[] = [];
const onEscape = (err: unknown) => escaped.push(err);

before(async () => {
  process.on("uncaughtException", onEscape);
  process.on("unhandledRejection", onEscape);
  const dir = mkdtempSync(join(tmpdir(), "nb-http-hostile-"));
  bus = await startBroker(`sqlite:${join(dir, "nb.db")}`);
  client = new TestClient(bus.address);
  host = bus.httpAddress!.slice(0, bus.httpAddress!.lastIndexOf(":"));
  port = Number(bus.httpAddress!.slice(bus.httpAddress!.lastIndexOf(":") + 1));
});
after(async () => {
  client.close();
  await bus.stop();
  process.off("uncaughtException", onEscape);
  process.off("unhandledRejection", onEscape);
});
beforeEach(() => {
  escaped.length = 0;
});

/** A parsed HTTP/1.1 response: status, lower-case headers, body (chunked encoding undone). */
interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/**
 * Writes `bytes` on a new connection to the HTTP port, half-closes it and returns everything the
 * server sent until it closed. A reset after the server answered counts as the end.
 */
function exchange(bytes: Buffer | string, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, host);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end of the answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    };
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("close", done);
    // EPIPE / ECONNRESET: the server refused the rest of a big request; what it sent stays.
    socket.on("error", () => {});
    socket.end(bytes);
  });
}

/** The first response in `raw`, or undefined when there is none. */
function parseResponse(raw: Buffer): RawResponse | undefined {
  const text = raw.toString("latin1");
  const m = /^HTTP\/1\.[01] (\d{3}) [^\r\n]*\r\n/.exec(text);
  const end = text.indexOf("\r\n\r\n");
  if (m === null || end < 0) return undefined;
  const headers = new Map<string, string>();
  for (const line of text.slice(m[0].length, end).split("\r\n")) {
    const i = line.indexOf(":");
    headers.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
  }
  let body = raw.subarray(Buffer.byteLength(text.slice(0, end + 4), "latin1"));
  if (headers.get("transfer-encoding") === "chunked") {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = body.indexOf("\r\n");
      const size = Number.parseInt(body.subarray(0, eol).toString("latin1"), 16);
      if (!(size > 0)) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      body = body.subarray(eol + 4 + size);
    }
    body = Buffer.concat(parts);
  } else if (headers.has("content-length")) {
    body = body.subarray(0, Number(headers.get("content-length")));
  }
  return { status: Number(m[1]), headers, body: body.toString("utf8") };
}

/** Sends one request as raw bytes and parses the answer; fails when there is none. */
async function rawRequest(bytes: string): Promise<RawResponse> {
  const raw = await exchange(bytes);
  const r = parseResponse(raw);
  assert.ok(
    r,
    `no HTTP response to ${JSON.stringify(bytes.slice(0, 200))}: got ${JSON.stringify(raw.toString("latin1").slice(0, 200))}`,
  );
  return r;
}

function request(method: string, target: string, headers: Record<string, string> = {}): string {
  const lines = Object.entries({ Host: `${host}:${port}`, ...headers }).map(([k, v]) => `${k}: ${v}\r\n`);
  return `${method} ${target} HTTP/1.1\r\n${lines.join("")}\r\n`;
}

/** Every status line in a connection's output (several when requests were pipelined). */
function statuses(raw: Buffer): number[] {
  return [...raw.toString("latin1").matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

/** The broker still serves: HTTP health, gRPC health, a confirmed publish. */
async function assertAlive(what: string): Promise<void> {
  const r = await rawRequest(request("GET", "/healthz"));
  assert.equal(r.status, 200, `${what}: /healthz`);
  const health = healthClient(bus.address);
  try {
    assert.equal(await healthStatus(health), "SERVING", `${what}: gRPC health`);
  } finally {
    health.close();
  }
  const sent = await client.publish("alive", [`after ${what}`]);
  assert.ok(sent.lastSeq >= 1n, `${what}: publish confirmed`);
}

/** Confirmed messages published before the attack: seq and payload of each. */
type Canary = Map<bigint, string>;

async function publishCanary(): Promise<Canary> {
  const canary: Canary = new Map();
  for (let pack = 0; pack < 3; pack++) {
    const payloads = Array.from({ length: 20 }, (_, i) => `canary ${pack}.${i} ${"é✓".repeat(i)}`);
    const r = await client.publish(CANARY_TOPIC, payloads);
    for (const [i, p] of payloads.entries()) canary.set(r.firstSeq + BigInt(i), p);
  }
  return canary;
}

/** Reads the canary topic from the start with a fresh subscription and compares. */
async function assertCanary(canary: Canary, subscription: string): Promise<void> {
  const stream = client.receive(CANARY_TOPIC, subscription, { from: "earliest", maxMessages: 1000 });
  try {
    await stream.until(() => stream.deliveries.length >= canary.size, 20_000, "the canary messages");
    const got = new Map(stream.deliveries.map((d) => [d.seq, Buffer.from(d.data).toString("utf8")]));
    assert.deepEqual(got, canary, `canary read by ${subscription}`);
  } finally {
    stream.cancel();
  }
}

test("the requests that used to end the process get a clean status", async () => {
  const cases: [string, number, RegExp][] = [
    [
      request("POST", "/api/topics/%/subscriptions/x/pause", { "X-NerveBus-Request": "1" }),
      400,
      /path segment 3 \("%"\) is not valid percent-encoded UTF-8/,
    ],
    [request("POST", "/api/topics/%/subscriptions/x/pause"), 400, /percent-encoded/],
    [request("GET", "/%E0%A4%A"), 400, /path segment 1 \("%E0%A4%A"\) is not valid percent-encoded UTF-8/],
    [request("GET", "//["), 404, /no route for GET \/\/\[/],
    // HTTP/1.0 needs no Host header, so these reach the handler without one.
    ["GET //[ HTTP/1.0\r\n\r\n", 404, /no route/],
    ["GET /%E0%A4%A HTTP/1.0\r\n\r\n", 400, /percent-encoded/],
    [request("GET", "http://evil.example/api/status"), 400, /is not a path/],
    [request("OPTIONS", "*"), 400, /is not a path/],
  ];
  for (const [bytes, status, error] of cases) {
    const r = await rawRequest(bytes);
    assert.equal(r.status, status, `${JSON.stringify(bytes)}: ${r.body}`);
    assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
    assert.match((JSON.parse(r.body) as { error: string }).error, error);
  }
  // Requests the HTTP parser refuses, and CONNECT, which never reaches a request handler.
  const refused: [string, number, RegExp][] = [
    [
      "GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
      400,
      /malformed HTTP request: HPE_INVALID_HEADER_TOKEN/,
    ],
    ["\x00\x01\x02 garbage\r\n\r\n", 400, /malformed HTTP request/],
    [`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(40_000)}\r\n\r\n`, 431, /HPE_HEADER_OVERFLOW/],
    [`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`, 405, /CONNECT is not allowed/],
  ];
  for (const [bytes, status, error] of refused) {
    const r = await rawRequest(bytes);
    assert.equal(r.status, status, `${JSON.stringify(bytes.slice(0, 80))}: ${r.body}`);
    assert.match((JSON.parse(r.body) as { error: string }).error, error);
  }
  await assertAlive("the former crash requests");
  assert.deepEqual(escaped, []);
});

test("an exception or a rejection in a handler is a 500, never a crash", async () => {
  // Faults injected into the real broker: a synchronous throw and a rejected promise.
  const broker = bus.broker as unknown as Record<string, unknown>;
  const listTopics = broker.listTopics;
  const updateSubscription = broker.updateSubscription;
  try {
    broker.listTopics = () => {
      throw new TypeError("injected fault");
    };
    broker.updateSubscription = () => Promise.reject(new Error("injected rejection"));
    const status = await rawRequest(request("GET", "/api/status"));
    assert.equal(status.status, 500);
    assert.deepEqual(JSON.parse(status.body), { error: "internal error; see the broker log" });
    const pause = await rawRequest(
      request("POST", "/api/topics/t/subscriptions/s/pause", { "X-NerveBus-Request": "1" }),
    );
    assert.equal(pause.status, 500);
  } finally {
    broker.listTopics = listTopics;
    broker.updateSubscription = updateSubscription;
  }
  await assertAlive("handler faults");
  assert.deepEqual(escaped, []);
});

const ROUTES = [
  "/",
  "/index.html",
  "/healthz",
  "/metrics",
  "/api/status",
  `/api/topics/${CANARY_TOPIC}/subscriptions/fuzz/pause`,
  `/api/topics/${CANARY_TOPIC}/subscriptions/fuzz/resume`,
  "/api/topics/%/subscriptions/x/pause",
  "/api/topics/a%2Fb/subscriptions/%00/resume",
  "/nope",
];
/** Path pieces a well-formed request line may carry: odd, undecodable or misleading, all legal. */
const PIECES = [
  "%",
  "%E0%A4%A",
  "%ZZ",
  "%00",
  "%2F",
  "%C0%AF",
  "%FF",
  "%ED%A0%80",
  "%F0%9F%98",
  "%F0%9F%98%80",
  "//",
  "/../",
  "/./",
  "[",
  "]",
  "?",
  "#",
  "?a=%&b",
  ";",
  "%25",
  "%20",
  "@",
  ":",
];
/** Bytes a request line must not contain. */
const BAD_PIECES = [" ", "\t", "\x00", "\x7f", "é", "\r", "\n"];
const METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"];
const BAD_METHODS = ["get", "BREW", "G\x00T", "", "GET GET", "\x16\x03\x01"];
const BAD_VERSIONS = ["HTTP/2.0", "HTTP/9.9", "HTTP/1.1x", "", "http/1.1", "HTTP/1"];

/**
 * One fuzzed request (or a few pipelined), as raw bytes, from the PRNG. About half are
 * well-formed HTTP with hostile content (paths, names, Host, Origin, bodies), which reach the
 * routes; the rest also break the framing (request line, header syntax, lengths, chunking, line
 * ends), which the HTTP parser must refuse cleanly.
 */
function fuzzCase(rand: () => number): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const chance = (p: number) => rand() < p;
  const int = (max: number) => Math.floor(rand() * max);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  // Any byte a header value may hold (tab, visible ASCII, obs-text), as latin1 text.
  const fieldBytes = (n: number) =>
    Array.from({ length: n }, () => {
      const b = 0x20 + int(0xe0);
      return String.fromCharCode(b === 0x7f ? 0x09 : b);
    }).join("");
  const origin = `http://${host}:${port}`;
  const one = (): Buffer => {
    const broken = chance(0.45);
    const breaks = (p: number) => broken && chance(p);
    let target = pick(ROUTES);
    for (let i = int(4); i > 0; i--) {
      const at = int(target.length + 1);
      const piece = chance(0.05) ? "a".repeat(int(20_000)) : breaks(0.3) ? pick(BAD_PIECES) : pick(PIECES);
      target = target.slice(0, at) + piece + target.slice(at);
    }
    if (chance(0.05)) target = pick(["*", "//[", "http://evil.example/api/status", "api/status", "%"]);
    if (breaks(0.1)) target = "";
    const method = breaks(0.2) ? pick(BAD_METHODS) : chance(0.6) ? pick(["GET", "POST"]) : pick(METHODS);
    const version = breaks(0.2) ? pick(BAD_VERSIONS) : chance(0.9) ? "HTTP/1.1" : "HTTP/1.0";
    const headers: string[] = [];
    if (!chance(0.05))
      headers.push(
        `Host: ${chance(0.8) ? `${host}:${port}` : pick(["localhost", "evil.example", "", "[::1]", "a b", `${host}:${port}, evil.example`, "x".repeat(300), "é"])}`,
      );
    if (chance(0.5))
      headers.push(
        `Origin: ${pick([origin, origin, "http://evil.example", "null", "garbage", `https://${host}:${port}`])}`,
      );
    if (chance(0.4))
      headers.push(
        `Sec-Fetch-Site: ${pick(["same-origin", "same-origin", "cross-site", "same-site", "none", "é"])}`,
      );
    if (chance(0.6)) headers.push(`X-NerveBus-Request: ${pick(["1", "1", "0", "", "1, 1"])}`);
    if (chance(0.1)) headers.push(`X-Junk: ${fieldBytes(int(200))}`);
    if (chance(0.04)) headers.push(`X-Huge: ${"h".repeat(10_000 + int(30_000))}`);
    if (chance(0.04)) for (let i = int(300); i > 0; i--) headers.push(`X-Many-${i}: ${i}`);
    let body = Buffer.alloc(0);
    if (chance(0.3)) body = bytes(chance(0.05) ? 1 << 20 : int(4096));
    if (breaks(0.1)) {
      headers.push("Transfer-Encoding: chunked");
      body = Buffer.from(
        chance(0.5)
          ? `${body.length.toString(16)}\r\n${body.toString("latin1")}\r\n0\r\n\r\n`
          : `zz\r\n${body.toString("latin1")}\r\n`,
        "latin1",
      );
    } else if (breaks(0.2)) {
      headers.push(
        `Content-Length: ${pick(["-1", "abc", "99999999999999999999", "1e3", `${body.length}, ${body.length + 1}`])}`,
      );
    } else if (body.length > 0 || chance(0.3)) {
      headers.push(`Content-Length: ${body.length}`);
    }
    if (breaks(0.15))
      headers.push(`${pick(["Bad Header", "X\x01", "", "Ünï", "X-Ctl"])}: ${pick(["v", "\x00", "\x01"])}`);
    if (breaks(0.05)) headers.push(" folded continuation");
    if (breaks(0.05)) headers.push("no colon here");
    const eol = breaks(0.15) ? pick(["\n", "\r", "\n\r"]) : "\r\n";
    const head = `${method} ${target}${version === "" ? "" : ` ${version}`}${eol}${headers.map((h) => h + eol).join("")}${eol}`;
    return Buffer.concat([Buffer.from(head, "latin1"), body]);
  };
  return chance(0.1) ? Buffer.concat(Array.from({ length: 2 + int(2) }, one)) : one();
}

test("a few hundred fuzzed requests on every route: a clean status for each, the broker alive, the canary intact", async (t) => {
  const canary = await publishCanary();
  await client.adminCall("createSubscription", { subscription: { topic: CANARY_TOPIC, name: "fuzz" } });
  const rand = prng(SEED);
  // All cases up front: the requests depend on the seed only, never on timing.
  const cases = Array.from({ length: BATCHES * CASES_PER_BATCH }, () => fuzzCase(rand));
  let sent = 0;
  const seen = new Map<number, number>();
  for (let batch = 0; batch < BATCHES; batch++) {
    const until = Date.now() + BATCH_BUDGET_MS;
    let next = batch * CASES_PER_BATCH;
    const last = next + CASES_PER_BATCH;
    const worker = async () => {
      while (next < last && Date.now() < until) {
        const i = next++;
        const raw = await exchange(cases[i]!).catch((err: Error) => {
          throw new Error(
            `seed ${SEED} case ${i}: ${err.message}; request ${JSON.stringify(cases[i]!.toString("latin1").slice(0, 300))}`,
          );
        });
        sent++;
        const codes = statuses(raw);
        for (const c of codes) seen.set(c, (seen.get(c) ?? 0) + 1);
        const what = `seed ${SEED} case ${i}: request ${JSON.stringify(cases[i]!.toString("latin1").slice(0, 300))} got ${JSON.stringify(raw.toString("latin1").slice(0, 300))}`;
        assert.ok(codes.length > 0, `no HTTP status: ${what}`);
        for (const c of codes) assert.ok(c >= 200 && c < 500, `status ${c}: ${what}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await assertAlive(`fuzz batch ${batch + 1}`);
    await assertCanary(canary, `canary-check-${batch + 1}`);
    assert.deepEqual(escaped, [], `nothing escaped in batch ${batch + 1}`);
  }
  const histogram = [...seen].sort(([a], [b]) => a - b).map(([c, n]) => `${c}×${n}`);
  t.diagnostic(`seed ${SEED}: ${sent} fuzzed connections; statuses ${histogram.join(" ")}`);
  assert.ok(sent >= BATCHES, "every batch sent something");
});

test("state changes refuse cross-site requests and foreign Host names; the page's own request works", async () => {
  await client.adminCall("createTopic", { topic: { name: "orders" } });
  await client.adminCall("createSubscription", { subscription: { topic: "orders", name: "billing" } });
  const pause = "/api/topics/orders/subscriptions/billing/pause";
  const origin = `http://${host}:${port}`;
  // What Chromium sends for the status page's fetch (see test/dashboard/status-page.test.ts,
  // which clicks the real button): its Origin, Sec-Fetch-Site and the page's marker header.
  const page = { Origin: origin, "Sec-Fetch-Site": "same-origin", "X-NerveBus-Request": "1" };
  const refused: [Record<string, string>, RegExp][] = [
    [{ ...page, Origin: "http://evil.example" }, /cross-origin request refused/],
    [{ ...page, Origin: "null" }, /cross-origin request refused/],
    [{ ...page, Origin: `http://${host}:${port + 1}` }, /cross-origin request refused/],
    [{ ...page, "Sec-Fetch-Site": "cross-site" }, /Sec-Fetch-Site: cross-site/],
    [{ ...page, "Sec-Fetch-Site": "same-site" }, /Sec-Fetch-Site: same-site/],
    [{ Origin: origin, "Sec-Fetch-Site": "same-origin" }, /need the header X-NerveBus-Request: 1/],
    [{ "Content-Type": "application/x-www-form-urlencoded" }, /need the header X-NerveBus-Request: 1/],
    [
      { ...page, Host: `evil.example:${port}`, Origin: `http://evil.example:${port}` },
      /Host header "evil\.example:\d+" is not an address/,
    ],
  ];
  for (const [headers, error] of refused) {
    const r = await rawRequest(request("POST", pause, headers));
    assert.equal(r.status, 403, `${JSON.stringify(headers)}: ${r.body}`);
    assert.match((JSON.parse(r.body) as { error: string }).error, error);
  }
  const still = await client.adminCall("getSubscription", { topic: "orders", name: "billing" });
  assert.equal(still.subscription?.paused, false, "no refused request paused it");
  // A cross-site fetch with the header first asks with OPTIONS; no CORS grant comes back.
  const preflight = await rawRequest(
    request("OPTIONS", pause, { Origin: "http://evil.example", "Access-Control-Request-Method": "POST" }),
  );
  assert.equal(preflight.status, 405);
  assert.equal(preflight.headers.get("access-control-allow-origin"), undefined);
  // DNS rebinding: reads are refused too, whatever the route.
  for (const target of ["/api/status", "/", "/metrics"]) {
    const r = await rawRequest(request("GET", target, { Host: `rebound.example:${port}` }));
    assert.equal(r.status, 403, `GET ${target} with a foreign Host`);
  }

  const ok = await rawRequest(request("POST", pause, page));
  assert.equal(ok.status, 200, ok.body);
  assert.deepEqual(JSON.parse(ok.body), { topic: "orders", subscription: "billing", paused: true });
  const paused = await client.adminCall("getSubscription", { topic: "orders", name: "billing" });
  assert.equal(paused.subscription?.paused, true);
  // Loopback names are this machine whatever the spelling; a command-line client needs only the
  // header.
  for (const name of ["localhost", "LOCALHOST.", "127.1", "[::1]"]) {
    const r = await rawRequest(
      request("POST", pause.replace("pause", "resume"), {
        Host: `${name}:${port}`,
        "X-NerveBus-Request": "1",
      }),
    );
    assert.equal(r.status, 200, `Host ${name}: ${r.body}`);
  }
});

test("every response carries the security headers", async () => {
  const common = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
  };
  const probes: [string, number][] = [
    [request("GET", "/"), 200],
    [request("GET", "/api/status"), 200],
    [request("GET", "/metrics"), 200],
    [request("GET", "/healthz"), 200],
    [request("HEAD", "/api/status"), 200],
    [request("GET", "/nope"), 404],
    [request("GET", "/%"), 400],
    [request("DELETE", "/api/status"), 405],
    [request("POST", "/api/topics/a/subscriptions/b/pause"), 403],
    [request("GET", "/", { Host: "evil.example" }), 403],
    ["BAD\x01 / HTTP/1.1\r\n\r\n", 400],
  ];
  for (const [bytes, status] of probes) {
    const r = await rawRequest(bytes);
    const what = JSON.stringify(bytes.split("\r\n")[0]);
    assert.equal(r.status, status, `${what}: ${r.body}`);
    for (const [k, v] of Object.entries(common)) assert.equal(r.headers.get(k), v, `${what}: ${k}`);
    const csp = r.headers.get("content-security-policy") ?? "";
    assert.match(csp, /default-src 'none'/, `${what}: CSP`);
    assert.match(csp, /frame-ancestors 'none'/, `${what}: CSP`);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, `${what}: CSP allows nothing broad`);
    if (bytes.startsWith("GET / ") && status === 200) {
      assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/]+=*'/, "the page's script, by hash");
      assert.match(csp, /style-src 'sha256-[A-Za-z0-9+/]+=*'/, "the page's stylesheet, by hash");
      assert.match(csp, /connect-src 'self'/);
    }
  }
  const r = await rawRequest(request("OPTIONS", "/"));
  assert.equal(r.headers.get("allow"), "GET, HEAD");
});

test("a port open to the network logs a loud warning; its Host rule accepts addresses and allowed names only", async () => {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const log: Logger = (level, msg, fields) => {
    lines.push({ level, msg, ...(fields ? { fields } : {}) });
    quietLog(level, msg, fields);
  };
  const dir = mkdtempSync(join(tmpdir(), "nb-http-exposed-"));
  const config = {
    ...loadConfig({ listen: "0.0.0.0:0", "http-allowed-hosts": "status.example, Other.Example" }, {}),
    store: `sqlite:${join(dir, "nb.db")}`,
  };
  const open = await startNerveBus(config, log);
  try {
    const warnings = lines.filter((l) => l.level === "warn" && /WITHOUT TLS OR AUTHENTICATION/.test(l.msg));
    assert.deepEqual(
      warnings.map((w) => w.fields?.address),
      [open.address, open.httpAddress],
      "one warning for the gRPC port, one for the HTTP port",
    );
    const openPort = open.httpAddress!.slice(open.httpAddress!.lastIndexOf(":") + 1);
    const get = (hostHeader: string) =>
      new Promise<number>((resolve, reject) => {
        const s = connect(Number(openPort), "127.0.0.1");
        let text = "";
        s.on("data", (c: Buffer) => {
          text += c.toString("latin1");
        });
        s.on("close", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
        s.on("error", reject);
        s.end(`GET /healthz HTTP/1.1\r\nHost: ${hostHeader}\r\n\r\n`);
      });
    for (const accepted of [
      "10.1.2.3",
      `127.0.0.1:${openPort}`,
      "localhost",
      "[fe80::1]:7071",
      "status.example",
      "OTHER.example:1",
    ])
      assert.equal(await get(accepted), 200, `Host ${accepted}`);
    for (const refused of ["evil.example", "status.example.evil.example", "10.1.2.3.evil.example"])
      assert.equal(await get(refused), 403, `Host ${refused}`);
  } finally {
    await open.stop();
  }
  await assert.rejects(
    startNerveBus(
      { ...config, listen: "127.0.0.1:0", httpListen: "127.0.0.1:0", httpAllowedHosts: "a/b" },
      quietLog,
    ),
    /--http-allowed-hosts: "a\/b" is not a host name/,
  );
});

test("a broker on loopback gives no exposure warning", async () => {
  const lines: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), "nb-http-loopback-"));
  const quiet = await startNerveBus(
    { ...loadConfig({ listen: "127.0.0.1:0" }, {}), store: `sqlite:${join(dir, "nb.db")}` },
    (level, msg) => lines.push(`${level} ${msg}`),
  );
  await quiet.stop();
  assert.deepEqual(
    lines.filter((l) => /WITHOUT TLS/.test(l)),
    [],
  );
});
