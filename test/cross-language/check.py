"""Checks the output of the cross-language test's three programs against each other.

    python check.py --n N --go GO.jsonl --relay RELAY.jsonl --ts TS.jsonl \
        --in-stats IN.json --out-stats OUT.json

GO.jsonl is what go/main.go printed (one line per published message, in publish order),
RELAY.jsonl what relay.py printed (one line per relayed delivery), TS.jsonl what consume.ts
printed (one line per delivery, in delivery order); IN.json and OUT.json are `nervebus stats`
of the two topics once the programs exited. Prints one line per check ("ok" or "FAIL" with the
first few differences) and exits 1 when any check failed. Standard library only.
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


def load(path: str) -> list[dict[str, Any]]:
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))
    return records


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

    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
