"""Checks the output of the cross-language test's three programs against each other.

    python check.py --n N --go GO.jsonl --relay RELAY.jsonl --ts TS.jsonl \
        --in-stats IN.json --out-stats OUT.json \
        [--go-spans G.jsonl --relay-spans R.jsonl --ts-spans T.jsonl --broker-spans B.jsonl]

GO.jsonl is what go/main.go printed (one line per published message, in publish order),
RELAY.jsonl what relay.py printed (one line per relayed delivery), TS.jsonl what consume.ts
printed (one line per delivery, in delivery order); IN.json and OUT.json are `nervebus stats`
of the two topics once the programs exited. The span files hold the spans each client made and
those the broker exported (otlp_sink.py): their names and attributes are checked against the
OpenTelemetry messaging conventions as docs/clients.md lists them. Prints one line per check
("ok" or "FAIL" with the first few differences) and exits 1 when any check failed. Standard
library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from typing import Any

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
TRACE_KEYS = ("traceparent", "tracestate")
SHOWN = 5  # differences shown per failed check

# Span attribute names, as docs/clients.md ("Tracing") lists them for the broker and the three
# clients: the OpenTelemetry messaging conventions, and NerveBus's own under messaging.nervebus.
SEQ = "messaging.nervebus.message.seq"
ATTEMPT = "messaging.nervebus.message.delivery_attempt"
ORDERING_KEY = "messaging.nervebus.message.ordering_key"
OUTCOME = "messaging.nervebus.publish.outcome"
SETTLEMENT = "messaging.nervebus.settlement"
SPAN_ATTRIBUTES = {
    "messaging.system",
    "messaging.destination.name",
    "messaging.destination.subscription.name",
    "messaging.consumer.group.name",
    "messaging.operation.type",
    "messaging.operation.name",
    "messaging.message.id",
    "messaging.message.body.size",
    "messaging.batch.message_count",
    SEQ,
    ATTEMPT,
    ORDERING_KEY,
    OUTCOME,
    SETTLEMENT,
    "messaging.nervebus.first_seq",
    "messaging.nervebus.last_seq",
    "messaging.nervebus.shard",
    "server.address",
    "server.port",
    "db.system.name",
}


def load(path: str) -> list[dict[str, Any]]:
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))
    return records


def span_problems(span: dict[str, Any], want: dict[str, Any], required: tuple[str, ...] = ()) -> list[str]:
    """How a span's attributes differ from `want` (name → value) and lack `required` names."""
    attrs = span["attributes"]
    problems = [
        f"{span['name']!r}: {k} = {attrs.get(k)!r}, want {v!r}" for k, v in want.items() if attrs.get(k) != v
    ]
    problems += [f"{span['name']!r}: no {k}" for k in required if k not in attrs]
    return problems


def unknown_names(spans: list[dict[str, Any]], who: str) -> list[str]:
    """Attribute names outside the documented set (e.g. an old name for the seq)."""
    names = {k for s in spans for k in s["attributes"]}
    return [f"{who} span attribute {k!r} is not a documented name" for k in sorted(names - SPAN_ATTRIBUTES)]


def check_client_spans(
    checks: Checks,
    label: str,
    spans: list[dict[str, Any]],
    kind: str,
    expected: dict[str, dict[str, Any]],
    required: tuple[str, ...],
) -> None:
    """Checks that each message id in `expected` has a span of `kind` whose attributes match."""
    problems = unknown_names(spans, label)
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in spans:
        if s["kind"] == kind:
            by_id[str(s["attributes"].get("messaging.message.id", ""))].append(s)
    for mid, want in expected.items():
        found = by_id.get(mid, [])
        if not found:
            problems.append(f"no {kind} span for message {mid!r}")
        for s in found:
            problems += span_problems(s, want, required)
    checks.report(f"{label} {kind} spans use the documented names and values ({len(spans)} spans)", problems)


def check_broker_spans(
    checks: Checks, spans: list[dict[str, Any]], go: list[dict[str, Any]], subscription: str
) -> None:
    """The broker's spans for topic xlang.in: publish, persist, deliver and settle."""
    topic = "xlang.in"
    problems = unknown_names(spans, "broker")
    named = defaultdict(list)
    for s in spans:
        named[s["name"]].append(s)
    base = {"messaging.system": "nervebus", "messaging.destination.name": topic}
    for name, want, required in (
        (
            f"publish {topic}",
            {**base, "messaging.operation.type": "send", "messaging.operation.name": "publish"},
            ("messaging.batch.message_count", "messaging.nervebus.first_seq", "messaging.nervebus.last_seq"),
        ),
        (
            f"persist {topic}",
            {**base, "messaging.operation.name": "persist"},
            ("messaging.batch.message_count", "messaging.nervebus.shard", "messaging.nervebus.first_seq"),
        ),
    ):
        if not named[name]:
            problems.append(f"no broker span {name!r}")
        for s in named[name]:
            problems += span_problems(s, want, required)
    sub = {
        "messaging.destination.subscription.name": subscription,
        "messaging.consumer.group.name": subscription,
    }
    for kind, name, want in (
        (
            "deliver",
            f"deliver {topic}",
            {"messaging.operation.type": "receive", "messaging.operation.name": "deliver"},
        ),
        ("settle", f"settle {topic}", {"messaging.operation.type": "settle", SETTLEMENT: "ack"}),
    ):
        by_seq = defaultdict(list)
        for s in named[name]:
            if s["attributes"].get("messaging.consumer.group.name") == subscription:
                by_seq[s["attributes"].get(SEQ)].append(s)
        for g in go:
            found = by_seq.get(g["seq"], [])
            if not found:
                problems.append(f"no broker {kind} span with {SEQ} = {g['seq']}")
            for s in found:
                problems += span_problems(s, {**base, **sub, **want}, (ATTEMPT,) if kind == "deliver" else ())
                got_id = s["attributes"].get("messaging.message.id")
                if kind == "deliver" and got_id != g["message_id"]:
                    problems.append(f"deliver span of seq {g['seq']}: message id {got_id!r}")
    checks.report(f"broker spans use the documented names and values ({len(spans)} spans)", problems)


def traceparent_ids(value: str) -> tuple[str, str]:
    """The trace id and parent span id of a W3C traceparent ("", "" when malformed)."""
    m = TRACEPARENT.match(value or "")
    return (m.group(1), m.group(2)) if m else ("", "")


class Checks:
    def __init__(self) -> None:
        self.failed = 0

    def report(self, name: str, problems: list[str]) -> None:
        if not problems:
            print(f"ok    {name}")
            return
        self.failed += 1
        print(f"FAIL  {name}: {len(problems)} problem(s)")
        for p in problems[:SHOWN]:
            print(f"        {p}")
        if len(problems) > SHOWN:
            print(f"        … and {len(problems) - SHOWN} more")


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("--go", "--relay", "--ts", "--in-stats", "--out-stats"):
        parser.add_argument(name, required=True)
    for name in ("--go-spans", "--relay-spans", "--ts-spans", "--broker-spans"):
        parser.add_argument(name)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--in-subscription", default="xlang-python-relay")
    parser.add_argument("--out-subscription", default="xlang-ts-consumer")
    args = parser.parse_args()
    n = args.n
    go, relay, ts = load(args.go), load(args.relay), load(args.ts)
    checks = Checks()

    # -- Go: what was published ----------------------------------------------------------------
    problems = []
    if len(go) != n:
        problems.append(f"{len(go)} messages published, want {n}")
    for r in go:
        i = r["index"]
        if r["outcome"] != "appended":
            problems.append(f"#{i}: outcome {r['outcome']}")
        if not re.fullmatch(r"[0-9a-f]{32}", r["trace_id"]) or r["trace_id"] == "0" * 32:
            problems.append(f"#{i}: no valid trace id on the Go span ({r['trace_id']!r})")
        for field in ("producer_trace_id", "receipt_trace_id"):
            if r[field] != r["trace_id"]:
                problems.append(f"#{i}: {field} {r[field]!r} != span trace id {r['trace_id']}")
        if r["producer_parent_span_id"] != r["span_id"]:
            problems.append(f"#{i}: the client's producer span is not a child of the Go span")
    if len({r["seq"] for r in go}) != len(go) or len({r["message_id"] for r in go}) != len(go):
        problems.append("seqs or message ids are not distinct")
    checks.report(
        f"Go published {len(go)} messages, SendPack returned the producer span's trace id", problems
    )
    by_id = {r["message_id"]: r for r in go}

    # -- Python: what was relayed --------------------------------------------------------------
    problems = []
    relayed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in relay:
        relayed[r["in_message_id"]].append(r)
    for mid in sorted(by_id.keys() - relayed.keys(), key=lambda m: by_id[m]["index"]):
        problems.append(f"#{by_id[mid]['index']} was not relayed")
    for mid in sorted(relayed.keys() - by_id.keys()):
        problems.append(f"relayed a message Go did not publish: {mid!r}")
    for mid, rs in relayed.items():
        g = by_id.get(mid)
        if g is None:
            continue
        i = g["index"]
        tp_trace, tp_parent = traceparent_ids(rs[0]["in_traceparent"])
        if (tp_trace, tp_parent) != (g["trace_id"], g["producer_span_id"]):
            problems.append(
                f"#{i}: traceparent in Python {rs[0]['in_traceparent']!r} is not the Go producer span"
            )
        for r in rs:
            if r["payload_b64"] != g["payload_b64"]:
                problems.append(f"#{i}: payload differs in Python")
            if r["in_ordering_key"] != g["ordering_key"]:
                problems.append(f"#{i}: ordering key {r['in_ordering_key']!r} in Python")
            for field in ("in_trace_id", "consumer_trace_id", "producer_trace_id", "out_trace_id"):
                if r[field] != g["trace_id"]:
                    problems.append(f"#{i}: Python {field} {r[field]!r} != Go trace id {g['trace_id']}")
            if r["consumer_parent_span_id"] != g["producer_span_id"]:
                problems.append(f"#{i}: Python consumer span's parent is not the Go producer span")
            if r["producer_parent_span_id"] != r["consumer_span_id"]:
                problems.append(f"#{i}: Python producer span's parent is not its consumer span")
            if r["out_outcome"] not in ("appended", "duplicate"):
                problems.append(f"#{i}: republish outcome {r['out_outcome']}")
    checks.report(
        f"Python relayed {len(relayed)} messages ({len(relay)} deliveries) inside consumer spans "
        "continuing the Go trace",
        problems,
    )
    relay_by_id = {mid: rs[-1] for mid, rs in relayed.items()}

    # -- TypeScript: exactly once ------------------------------------------------------------------
    problems = []
    counts: dict[str, int] = defaultdict(int)
    for t in ts:
        counts[t["message_id"]] += 1
    for mid in sorted(by_id.keys() - counts.keys(), key=lambda m: by_id[m]["index"]):
        problems.append(f"#{by_id[mid]['index']} never reached TypeScript")
    for mid, c in counts.items():
        if mid not in by_id:
            problems.append(f"TypeScript got a message Go did not publish: {mid!r}")
        elif c > 1:
            problems.append(f"#{by_id[mid]['index']} reached TypeScript {c} times")
    if len({t["seq"] for t in ts}) != len(ts):
        problems.append("TypeScript saw a seq more than once")
    checks.report(f"every message reached TypeScript exactly once ({len(ts)} deliveries, want {n})", problems)

    # -- payloads and order --------------------------------------------------------------------
    problems = []
    for t in ts:
        g = by_id.get(t["message_id"])
        if g is None:
            continue
        if t["payload_b64"] != g["payload_b64"]:
            problems.append(f"#{g['index']}: payload differs in TypeScript")
        if t["ordering_key"] != g["ordering_key"]:
            problems.append(f"#{g['index']}: ordering key {t['ordering_key']!r} in TypeScript")
    published: dict[str, list[int]] = defaultdict(list)
    for g in go:  # in publish order
        published[g["ordering_key"]].append(g["index"])
    arrived: dict[str, list[int]] = defaultdict(list)
    for t in ts:  # in delivery order
        g = by_id.get(t["message_id"])
        if g is not None:
            arrived[g["ordering_key"]].append(g["index"])
    for key, want in published.items():
        got = arrived.get(key, [])
        if got != want:
            first = next(
                (k for k, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                min(len(got), len(want)),
            )
            problems.append(
                f"key {key!r}: TypeScript order differs from Go's publish order from position {first}: "
                f"got {got[first : first + 5]}, want {want[first : first + 5]}"
            )
    order = "total order" if len(published) == 1 else f"order within each of {len(published)} keys"
    checks.report(f"payloads identical, in Go's publish order ({order})", problems)

    # -- attributes ----------------------------------------------------------------------------
    problems = []
    for t in ts:
        g = by_id.get(t["message_id"])
        if g is None:
            continue
        expected = {**g["attributes"], "relayed_by": "python"}
        actual = {k: v for k, v in t["attributes"].items() if k not in TRACE_KEYS}
        if actual != expected:
            problems.append(f"#{g['index']}: attributes {actual} != {expected}")
        if g["attributes"].get("lang") != "go" or g["attributes"].get("n") != str(g["index"]):
            problems.append(f"#{g['index']}: Go did not set n and lang as expected: {g['attributes']}")
    checks.report("attributes carried over (n, lang=go, text) plus relayed_by=python", problems)

    # -- one trace from Go to TypeScript -------------------------------------------------------
    problems = []
    for t in ts:
        g = by_id.get(t["message_id"])
        if g is None:
            continue
        i = g["index"]
        tp_trace, tp_parent = traceparent_ids(t["traceparent"])
        for name, value in (
            ("broker's trace id", t["trace_id"]),
            ("traceparent", tp_trace),
            ("consumer span", t["consumer_trace_id"]),
        ):
            if value != g["trace_id"]:
                problems.append(
                    f"#{i}: TypeScript {name} trace id {value!r} != Go producer's {g['trace_id']}"
                )
        p = relay_by_id.get(t["message_id"])
        if p is not None and tp_parent != p["producer_span_id"]:
            problems.append(f"#{i}: traceparent in TypeScript does not name the Python producer span")
        if t["consumer_parent_span_id"] != tp_parent:
            problems.append(f"#{i}: TypeScript consumer span's parent is not the traceparent's span")
    checks.report(
        "trace id in TypeScript = Go producer span's (Go → Python consumer → Python producer → TS consumer)",
        problems,
    )

    # -- the broker's view: nothing extra appended, everything acked ---------------------------
    problems = []
    for path, subscription in (
        (args.in_stats, args.in_subscription),
        (args.out_stats, args.out_subscription),
    ):
        try:
            with open(path, encoding="utf-8") as f:
                stats = json.load(f)
        except (OSError, ValueError) as err:
            problems.append(f"no stats of the topic of {subscription}: {err}")
            continue
        topic = stats["topic"]
        # Proto JSON: 64-bit counters are strings, zero values are left out.
        if int(topic.get("lastSeq", 0)) != n:
            problems.append(f"topic {topic['name']}: last seq {topic.get('lastSeq', 0)}, want {n}")
        sub = next((s for s in stats.get("subscriptions", []) if s["name"] == subscription), None)
        if sub is None:
            problems.append(f"topic {topic['name']}: no subscription {subscription}")
            continue
        for field in ("backlog", "inFlight", "waitingRedelivery", "deadLettered"):
            if int(sub.get(field, 0)) != 0:
                problems.append(
                    f"{topic['name']}/{subscription}: {field} = {sub[field]} after the run, want 0"
                )
        if int(sub.get("floor", 0)) != n:
            problems.append(f"{topic['name']}/{subscription}: ack floor {sub.get('floor', 0)}, want {n}")
        if int(sub.get("redelivered", 0)):
            print(f"note  {topic['name']}/{subscription}: {sub['redelivered']} redelivery(ies)")
    checks.report(f"broker: {n} messages on each topic, all acked on both subscriptions", problems)

    # -- span attribute names: the same in the broker and the three clients ----------------------
    if args.go_spans:
        check_client_spans(
            checks,
            "Go",
            load(args.go_spans),
            "producer",
            {
                g["message_id"]: {
                    "messaging.system": "nervebus",
                    "messaging.destination.name": "xlang.in",
                    "messaging.operation.type": "send",
                    "messaging.operation.name": "publish",
                    "messaging.message.id": g["message_id"],
                    SEQ: g["seq"],
                    OUTCOME: g["outcome"],
                    ORDERING_KEY: g["ordering_key"],
                }
                for g in go
            },
            ("messaging.message.body.size", "server.address", "server.port"),
        )
    consumed = {
        "messaging.system": "nervebus",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        SETTLEMENT: "ack",
    }
    if args.relay_spans:
        relay_spans = load(args.relay_spans)
        check_client_spans(
            checks,
            "Python",
            relay_spans,
            "consumer",
            {
                mid: {
                    **consumed,
                    "messaging.destination.name": "xlang.in",
                    "messaging.destination.subscription.name": args.in_subscription,
                    "messaging.consumer.group.name": args.in_subscription,
                    "messaging.message.id": mid,
                    SEQ: rs[0]["in_seq"],
                    ORDERING_KEY: rs[0]["in_ordering_key"],
                }
                for mid, rs in relayed.items()
            },
            (ATTEMPT, "messaging.message.body.size", "server.address", "server.port"),
        )
        check_client_spans(
            checks,
            "Python",
            relay_spans,
            "producer",
            {
                mid: {
                    "messaging.system": "nervebus",
                    "messaging.destination.name": "xlang.out",
                    "messaging.operation.type": "send",
                    "messaging.operation.name": "publish",
                    "messaging.message.id": mid,
                    ORDERING_KEY: r["in_ordering_key"],
                }
                for mid, r in relay_by_id.items()
            },
            (SEQ, OUTCOME, "messaging.message.body.size", "server.address", "server.port"),
        )
    if args.ts_spans:
        check_client_spans(
            checks,
            "TypeScript",
            load(args.ts_spans),
            "consumer",
            {
                t["message_id"]: {
                    **consumed,
                    "messaging.destination.name": "xlang.out",
                    "messaging.destination.subscription.name": args.out_subscription,
                    "messaging.consumer.group.name": args.out_subscription,
                    "messaging.message.id": t["message_id"],
                    SEQ: t["seq"],
                    ATTEMPT: t["attempt"],
                    ORDERING_KEY: t["ordering_key"],
                }
                for t in ts
            },
            ("messaging.message.body.size", "server.address", "server.port"),
        )
    if args.broker_spans:
        check_broker_spans(checks, load(args.broker_spans), go, args.in_subscription)

    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
