import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { startBroker, TestClient } from "../support/broker.js";
import { useTestMysql } from "../support/mariadb.js";
import { consume, createSubscription, createTopic, settle, waitFor } from "./support.js";

/** ops/grafana/nervebus.json, from dist/test/dashboard/. */
const DASHBOARD = fileURLToPath(new URL("../../../ops/grafana/nervebus.json", import.meta.url));
/** Labels Prometheus adds to every scraped series; the broker's exposition does not carry them. */
const TARGET_LABELS = new Set(["instance", "job"]);
/** How panels, queries and variables name the data source: Grafana's $datasource variable. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template.
const DATASOURCE = { type: "prometheus", uid: "${datasource}" };

interface Target {
  expr: string;
  legendFormat?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  fieldConfig?: { defaults?: { unit?: string } };
}
interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  datasource?: { type?: string; uid?: string };
}
interface Dashboard {
  title: string;
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

function loadDashboard(): Dashboard {
  const text = readFileSync(DASHBOARD, "utf8");
  return JSON.parse(text) as Dashboard;
}

function variableQuery(v: Variable): string {
  return typeof v.query === "string" ? v.query : v.query.query;
}

/** Every PromQL expression of the dashboard: panel targets and query variables. */
function expressions(d: Dashboard): { where: string; expr: string; legend?: string }[] {
  const out: { where: string; expr: string; legend?: string }[] = [];
  for (const p of d.panels)
    for (const t of p.targets ?? [])
      out.push({
        where: `panel "${p.title}"`,
        expr: t.expr,
        ...(t.legendFormat ? { legend: t.legendFormat } : {}),
      });
  for (const v of d.templating.list)
    if (v.type === "query") out.push({ where: `variable $${v.name}`, expr: variableQuery(v) });
  return out;
}

/** Metrics only a MySQL store has (a SQLite broker's scrape has no series of them). */
const MYSQL_ONLY = new Set(["nervebus_store_read_only"]);

const testMysql = useTestMysql();

const metricNames = (expr: string) => [...new Set(expr.match(/\bnervebus_[a-z0-9_]+\b/g) ?? [])];

/** Sample names of a Prometheus text exposition, each with the label names it carries. */
function parseExposition(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+\S+/.exec(line);
    assert.ok(m, `malformed exposition line: ${line}`);
    const labels = out.get(m[1]!) ?? new Set<string>();
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_]\w*)="/g)) labels.add(l[1]!);
    out.set(m[1]!, labels);
  }
  return out;
}

test("the Grafana dashboard is well-formed and wired to a datasource variable", () => {
  const d = loadDashboard();
  assert.equal(d.title, "NerveBus");
  assert.match(d.uid, /^[\w-]{1,40}$/);
  assert.ok(d.schemaVersion >= 36, `schemaVersion ${d.schemaVersion}`);

  const vars = new Map(d.templating.list.map((v) => [v.name, v]));
  const ds = vars.get("datasource");
  assert.equal(ds?.type, "datasource");
  assert.equal(ds?.query, "prometheus");
  const topic = vars.get("topic");
  assert.equal(topic?.type, "query");
  assert.match(variableQuery(topic!), /^label_values\(nervebus_\w+(\{[^}]*\})?, topic\)$/);
  for (const v of d.templating.list.filter((x) => x.type === "query"))
    assert.deepEqual(v.datasource, DATASOURCE, `variable $${v.name}`);

  const ids = new Set<number>();
  const boxes: Panel[] = [];
  for (const p of d.panels) {
    assert.ok(!ids.has(p.id), `panel id ${p.id} is unique`);
    ids.add(p.id);
    const g = p.gridPos;
    assert.ok(
      g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.y >= 0 && g.h > 0,
      `panel "${p.title}" fits the grid`,
    );
    for (const q of boxes) {
      const overlap =
        g.x < q.gridPos.x + q.gridPos.w &&
        q.gridPos.x < g.x + g.w &&
        g.y < q.gridPos.y + q.gridPos.h &&
        q.gridPos.y < g.y + g.h;
      assert.ok(!overlap, `panels "${p.title}" and "${q.title}" overlap`);
    }
    boxes.push(p);
    if (p.type === "row") continue;
    assert.ok(["timeseries", "stat"].includes(p.type), `panel "${p.title}" type ${p.type}`);
    assert.deepEqual(p.datasource, DATASOURCE, `panel "${p.title}"`);
    assert.ok((p.targets ?? []).length > 0, `panel "${p.title}" has queries`);
    const refIds = new Set<string>();
    for (const t of p.targets ?? []) {
      assert.deepEqual(t.datasource, DATASOURCE, `a query of "${p.title}"`);
      const ref = (t as { refId?: string }).refId ?? "";
      assert.ok(ref !== "" && !refIds.has(ref), `panel "${p.title}" refIds are unique`);
      refIds.add(ref);
    }
    // Latency histograms are in seconds: their panels say so.
    if ((p.targets ?? []).some((t) => /_seconds_bucket/.test(t.expr)))
      assert.equal(p.fieldConfig?.defaults?.unit, "s", `unit of "${p.title}"`);
  }

  // The panels the operators asked for.
  const used = new Set(expressions(d).flatMap((e) => metricNames(e.expr)));
  for (const m of [
    "nervebus_messages_published_total",
    "nervebus_publish_confirm_seconds_bucket",
    "nervebus_end_to_end_seconds_bucket",
    "nervebus_subscription_backlog",
    "nervebus_subscription_in_flight",
    "nervebus_redeliveries_total",
    "nervebus_dead_letters_total",
    "nervebus_store_batch_rows_bucket",
    "nervebus_store_seconds_bucket",
    "nervebus_store_errors_total",
    "nervebus_open_streams",
    "nervebus_write_buffer_bytes",
    "nervebus_store_disk_full",
  ])
    assert.ok(used.has(m), `the dashboard charts ${m}`);
  // A full disk refuses publishes: a stat panel that turns red at 1, per place; a read-only
  // MySQL server (a failover) holds writes back: one per server.
  stateStatPanel(d, "nervebus_store_disk_full", "place");
  stateStatPanel(d, "nervebus_store_read_only", "server");
  const exprs = expressions(d).map((e) => e.expr);
  for (const q of ["0.5", "0.99", "0.999"])
    assert.ok(
      exprs.some(
        (e) => e.startsWith(`histogram_quantile(${q}, `) && e.includes("nervebus_end_to_end_seconds"),
      ),
      `end-to-end p${Number(q) * 100}`,
    );
});

/** The one panel that shows the 0/1 gauge `metric`: a stat, red at 1, one value per `label`. */
function stateStatPanel(d: Dashboard, metric: string, label: string): void {
  const found = d.panels.filter((p) => (p.targets ?? []).some((t) => t.expr.includes(metric)));
  assert.equal(found.length, 1, `one panel shows ${metric}`);
  const panel = found[0] as Panel & {
    fieldConfig: { defaults: { thresholds?: { steps: { color: string; value: number | null }[] } } };
  };
  assert.equal(panel.type, "stat");
  assert.ok(
    panel.fieldConfig.defaults.thresholds?.steps.some((s) => s.color === "red" && s.value === 1),
    `the ${metric} panel is red at 1`,
  );
  assert.match(
    panel.targets![0]!.expr,
    new RegExp(`\\bby \\([^)]*\\b${label}\\b`),
    `the ${metric} panel shows each ${label}`,
  );
}

/** What the dashboard's expressions (those `only` keeps) query that the scrape `metrics` lacks. */
function unscraped(
  d: Dashboard,
  metrics: Map<string, Set<string>>,
  only: (names: string[]) => boolean,
): string[] {
  const missing: string[] = [];
  for (const { where, expr, legend } of expressions(d)) {
    const names = metricNames(expr);
    assert.ok(names.length > 0, `${where} queries a NerveBus metric: ${expr}`);
    if (!only(names)) continue;
    const labelsOf = (name: string) => metrics.get(name) ?? new Set<string>();
    for (const name of names) if (!metrics.has(name)) missing.push(`${where}: metric ${name}`);
    // Label matchers right after a metric name: metric{label=~"..."}
    for (const sel of expr.matchAll(/\b(nervebus_[a-z0-9_]+)\{([^}]*)\}/g))
      for (const l of sel[2]!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g))
        if (!TARGET_LABELS.has(l[1]!) && !labelsOf(sel[1]!).has(l[1]!))
          missing.push(`${where}: label ${l[1]} on ${sel[1]}`);
    // Grouping labels, label_values() labels and legend placeholders must exist on a metric it queries.
    const onSome = (label: string) => TARGET_LABELS.has(label) || names.some((n) => labelsOf(n).has(label));
    const grouped: string[] = [];
    for (const by of expr.matchAll(/\bby\s*\(([^)]*)\)/g))
      grouped.push(...by[1]!.split(",").map((s) => s.trim()));
    for (const l of grouped) if (!onSome(l)) missing.push(`${where}: grouping label ${l}`);
    const lv = /^label_values\([^,]+,\s*(\w+)\)$/.exec(expr);
    if (lv && !onSome(lv[1]!)) missing.push(`${where}: label_values label ${lv[1]}`);
    // A legend can only name labels that the aggregation keeps.
    for (const p of (legend ?? "").matchAll(/\{\{\s*(\w+)\s*\}\}/g))
      if (grouped.length > 0 ? !grouped.includes(p[1]!) : !onSome(p[1]!))
        missing.push(`${where}: legend label ${p[1]}`);
  }
  return missing;
}

test("every metric and label the Grafana dashboard queries exists in a live broker's /metrics", {
  timeout: 60_000,
}, async () => {
  const d = loadDashboard();
  const dir = mkdtempSync(join(tmpdir(), "nb-grafana-"));
  const bus = await startBroker(`sqlite:${join(dir, "nb.db")}`, { minBackoffMs: 0, maxBackoffMs: 0 });
  const client = new TestClient(bus.address);
  try {
    await createTopic(client, "orders");
    await createSubscription(client, "orders", "billing");
    // One failed insert (the shard writer retries it), so nervebus_store_errors_total exists.
    const store = bus.broker.store;
    const insert = store.insertRuns.bind(store);
    let failures = 1;
    store.insertRuns = (...args) =>
      failures-- > 0 ? Promise.reject(new Error("injected store failure")) : insert(...args);
    await client.publish(
      "orders",
      Array.from({ length: 12 }, (_, i) => `order-${i}`),
    );
    store.insertRuns = insert;
    const stream = consume(client, "orders", "billing", "billing-worker", 100);
    await stream.until(() => stream.deliveries.length >= 12, 10_000, "12 deliveries");
    // Nack every third (redeliveries), dead-letter one, ack the rest.
    const done = { count: 0 };
    settle(stream, done, { nack: (seq) => seq % 3 === 0, terminate: (seq) => seq === 5 });
    await stream.until(() => stream.deliveries.length >= 16, 10_000, "4 redeliveries");
    settle(stream, done);

    const metrics = await waitFor("a scrape with redeliveries, dead letters and store errors", async () => {
      const res = await fetch(`http://${bus.httpAddress}/metrics`);
      assert.equal(res.status, 200);
      const m = parseExposition(await res.text());
      return [
        "nervebus_redeliveries_total",
        "nervebus_dead_letters_total",
        "nervebus_store_errors_total",
      ].every((n) => m.has(n))
        ? m
        : undefined;
    });

    // MySQL-only metrics are checked against a MySQL broker below.
    const missing = unscraped(d, metrics, (names) => !names.some((n) => MYSQL_ONLY.has(n)));
    assert.deepEqual(missing, [], "everything the dashboard queries is in the scrape");
    await stream.end();
  } finally {
    client.close();
    await bus.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the dashboard's MySQL-only metrics and labels exist in a live MySQL broker's /metrics", {
  timeout: 60_000,
}, async () => {
  const d = loadDashboard();
  const bus = await startBroker(await testMysql().database("grafana_mysql"));
  try {
    const res = await fetch(`http://${bus.httpAddress}/metrics`);
    assert.equal(res.status, 200);
    const metrics = parseExposition(await res.text());
    const mysqlOnly = (names: string[]) => names.some((n) => MYSQL_ONLY.has(n));
    assert.ok(
      expressions(d).some((e) => mysqlOnly(metricNames(e.expr))),
      "the dashboard queries MySQL-only metrics",
    );
    assert.deepEqual(
      unscraped(d, metrics, mysqlOnly),
      [],
      "everything the dashboard queries is in the scrape",
    );
  } finally {
    await bus.stop();
  }
});
