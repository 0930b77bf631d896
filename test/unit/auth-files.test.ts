import assert from "node:assert/strict";
import { test } from "node:test";
import { EVERY_NAME, Policy, tokenHash } from "../../src/auth/index.js";
import { jsonErrorOffset } from "../../src/auth/json-error-offset.js";
import { NamePattern } from "../../src/auth/name-pattern.js";
import { Reloadable } from "../../src/auth/reloadable.js";
import { TokenTable } from "../../src/auth/token-table.js";

test("name patterns: * any run, ? one character, the rest literal and case-sensitive", () => {
  const p = NamePattern.parse("orders.*-v?");
  assert.ok(!("problem" in p));
  assert.ok(p.matches("orders.eu-v1"));
  assert.ok(p.matches("orders.-v2"));
  assert.ok(!p.matches("ordersXeu-v1"), "the dot is literal");
  assert.ok(!p.matches("Orders.eu-v1"));
  assert.ok(!p.matches("orders.eu-v12"));
  assert.match((NamePattern.parse("a/b") as { problem: string }).problem, /contains "\/"/);
});

test("policy: own rules plus default, subscriptions default to all, EVERY_NAME needs *", () => {
  const policy = Policy.parse(
    "p.json",
    JSON.stringify({
      principals: {
        billing: [{ allow: ["subscribe", "admin"], topics: ["orders"], subscriptions: ["billing-*"] }],
        ops: [{ allow: ["admin"], topics: ["*"] }],
      },
      default: [{ allow: ["publish"], topics: ["audit"] }],
    }),
  );
  assert.ok(policy.allows("billing", "subscribe", "orders", "billing-eu"));
  assert.ok(!policy.allows("billing", "subscribe", "orders", "shipping"));
  assert.ok(policy.allows("billing", "publish", "audit"), "default rules apply to everyone");
  assert.ok(policy.allows("stranger", "publish", "audit"));
  assert.ok(!policy.allows("stranger", "publish", "orders"));
  assert.ok(policy.allows("billing", "admin", "orders"), "a read of the topic shows its own subscriptions");
  assert.ok(
    !policy.allows("billing", "admin", "orders", EVERY_NAME),
    "deleting the topic needs all subscriptions",
  );
  assert.ok(policy.allows("ops", "admin", EVERY_NAME, EVERY_NAME));
  assert.ok(!policy.allowsSomewhere("stranger", "admin"));
  assert.ok(policy.allowsSomewhere("billing", "admin"));
});

test("policy files: each mistake names the file and the key path or line", () => {
  const cases: [unknown, RegExp][] = [
    [[], /p\.json: must be a JSON object/],
    [
      { principals: { a: [{ allow: ["read"], topics: ["x"] }] } },
      /p\.json principals\.a\[0\]\.allow\[0\]: "read" is not an action/,
    ],
    [
      { principals: { a: [{ allow: ["publish"] }] } },
      /p\.json principals\.a\[0\]\.topics: must be a non-empty array/,
    ],
    [
      { principals: { a: [{ allow: ["publish"], topics: ["x y"] }] } },
      /p\.json principals\.a\[0\]\.topics\[0\]: "x y" contains " "/,
    ],
    [
      { principals: { a: [{ allow: ["publish"], topics: ["x"], topic: ["y"] }] } },
      /principals\.a\[0\]\.topic: is not a rule field/,
    ],
    [{ principal: {} }, /p\.json principal: is not a policy field/],
    [{ default: {} }, /p\.json default: must be an array of rules/],
  ];
  for (const [raw, message] of cases)
    assert.throws(() => Policy.parse("p.json", JSON.stringify(raw)), message);
  assert.throws(
    () => Policy.parse("p.json", '{\n  "default": [\n    {"allow": ["publish"] "topics": ["x"]}\n  ]\n}'),
    /p\.json line 3 column 27: not valid JSON/,
  );
});

test("the JSON error locator points at the first bad character", () => {
  assert.equal(jsonErrorOffset('{"a": [1, 2]}'), -1);
  assert.equal(jsonErrorOffset('{"a": [1, ]}'), 10);
  assert.equal(jsonErrorOffset('{"a" 1}'), 5);
  assert.equal(jsonErrorOffset('{"a": tru}'), 9);
  assert.equal(jsonErrorOffset('{"a": 1} x'), 9);
  assert.equal(jsonErrorOffset(""), 0);
});

test("tokens file: hashes only, one principal per line, mistakes named by line", () => {
  const table = TokenTable.parse(
    "t",
    `# comment\n\n${tokenHash("s3cret")}  billing\n${tokenHash("other").toUpperCase()} ops\n`,
  );
  assert.equal(table.lookup("s3cret"), "billing");
  assert.equal(table.lookup("other"), "ops");
  assert.equal(table.lookup(tokenHash("s3cret")), undefined, "the hash itself is no token");
  assert.throws(() => TokenTable.parse("t", "s3cret billing\n"), /: t line 1: must start with the SHA-256/);
  assert.throws(
    () => TokenTable.parse("t", `${tokenHash("a")}\n`),
    /: t line 1: must be SHA256HEX PRINCIPAL/,
  );
  assert.throws(
    () => TokenTable.parse("t", `${tokenHash("a")} x\n${tokenHash("a")} y\n`),
    /: t line 2: repeats a token hash/,
  );
});

test("a reloadable file: replaced when it changes and parses, kept when it does not, a broken one re-reported on force", () => {
  let text = "1";
  const file = new Reloadable(
    "n",
    () => text,
    (t) => {
      if (!/^\d+$/.test(t)) throw new Error(`bad ${t}`);
      return Number(t);
    },
  );
  assert.equal(file.reload(false), false, "unchanged");
  text = "2";
  assert.equal(file.reload(false), true);
  assert.equal(file.value, 2);
  text = "x";
  assert.throws(() => file.reload(false), /bad x/);
  assert.equal(file.value, 2, "the one in use stays");
  assert.equal(file.reload(false), false, "a periodic check does not report it again");
  assert.throws(() => file.reload(true), /bad x/, "SIGHUP does");
  text = "3";
  assert.equal(file.reload(false), true);
  assert.equal(file.value, 3);
});
