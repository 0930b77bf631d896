"""Throughput of the Python client against a real broker on SQLite; prints one JSON object.

Two phases, each on its own fresh topic: ``publish`` sends ``--messages`` messages of ``--size``
bytes through one Publisher and waits until the broker confirmed every one; ``receive`` has one
Subscriber read them back from the earliest seq and ack each (its handler does nothing else).
For each phase it reports messages per second, the CPU time this Python process used per
message (all its threads: gRPC's included), the broker's CPU per message, and this process's
peak RSS so far (``ru_maxrss``, so the receive phase's figure includes the publish phase's).

``--api`` picks how messages are published:

- ``batch``: ``publish_many()`` on chunks of ``--batch`` messages, ``--depth`` chunks at once;
- ``submit``: one ``submit()`` per message, its future kept until settled (no task per message);
- ``gather``: one ``publish()`` task per message, all at once via ``asyncio.gather`` (the
  pattern whose memory grows with the message count, for comparison).

By default it starts its own broker (``node dist/src/cli/main.js serve`` on 127.0.0.1:0 with a
temporary SQLite file, as the tests do); ``--broker HOST:PORT`` uses a running one instead.
``--profile FILE`` writes a cProfile (CPU time) of each phase to ``FILE.<phase>``; ``--otel-sdk``
makes every message traced (producer and consumer spans recorded, not exported).

Run it with ``bash scripts/bench.sh [flags]`` from ``clients/python``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

import nervebus

REPO = Path(__file__).resolve().parents[3]
BROKER_MAIN = Path(os.environ.get("NERVEBUS_TEST_BROKER_MAIN") or REPO / "dist" / "src" / "cli" / "main.js")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Broker:
    """A broker process this program started, or the address of one it did not."""

    address: str
    proc: subprocess.Popen[bytes] | None = None

    def cpu_seconds(self) -> float | None:
        """User + system CPU the broker process used so far (None when it is not ours)."""
        if self.proc is None:
            return None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextmanager
def broker(address: str | None) -> Iterator[Broker]:
    """The broker to measure against: ``address``, or a new one on a temporary SQLite file."""
    if address:
        yield Broker(address)
        return
    if not BROKER_MAIN.exists():
        sys.exit(f"{BROKER_MAIN} is missing: build the broker (cd {REPO} && npx tsc -p .)")
    with tempfile.TemporaryDirectory(prefix="nervebus-bench-") as tmp:
        cmd = [
            "node", str(BROKER_MAIN), "serve",
            "--listen", "127.0.0.1:0",
            "--store", f"sqlite:{tmp}/bench.db",
            "--log-level", "warn",
        ]  # fmt: skip
        with open(Path(tmp) / "broker.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
            try:
                assert proc.stdout is not None
                line = proc.stdout.readline().decode().strip()
                prefix = "nervebus listening on "
                if not line.startswith(prefix):
                    sys.exit(f"broker did not start: {line!r}\n{(Path(tmp) / 'broker.log').read_text()}")
                yield Broker(line[len(prefix) :], proc)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


class Meter:
    """Wall time, this process's CPU time and the broker's CPU time over one phase."""

    def __init__(self, b: Broker, messages: int, profile: str | None) -> None:
        self.broker = b
        self.messages = messages
        self.profiler = cProfile.Profile(time.process_time) if profile else None
        self.profile = profile

    def __enter__(self) -> Meter:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        self.broker_cpu = self.broker.cpu_seconds()
        if self.profiler:
            self.profiler.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.profiler:
            self.profiler.disable()
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        after = self.broker.cpu_seconds()
        self.broker_cpu = None if after is None or self.broker_cpu is None else after - self.broker_cpu

    def report(self, phase: str, **extra: Any) -> dict[str, Any]:
        """The phase's figures (and its profile written to ``PROFILE.<phase>``)."""
        if self.profiler and self.profile:
            self.profiler.dump_stats(f"{self.profile}.{phase}")
        n = self.messages
        return {
            "messages": n,
            "seconds": round(self.wall, 3),
            "msg_per_s": round(n / self.wall),
            "client_cpu_us_per_msg": round(self.cpu / n * 1e6, 2),
            "broker_cpu_us_per_msg": None if self.broker_cpu is None else round(self.broker_cpu / n * 1e6, 2),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            **extra,
        }


async def publish(client: nervebus.Client, topic: str, args: argparse.Namespace, b: Broker) -> dict[str, Any]:
    """Publishes ``--messages`` messages to ``topic`` with ``--api``; checks every seq is distinct."""
    payload = os.urandom(args.size // 2).hex().encode()[: args.size]
    settings = nervebus.PublisherSettings(max_messages=args.pack, max_inflight_packs=args.inflight)
    n = args.messages
    # One pack first, so the connection is up and warm before measuring.
    async with client.publisher(f"{topic}-warm-up", settings) as warm_up:
        await asyncio.gather(*(warm_up.publish(payload) for _ in range(1000)))
    async with client.publisher(topic, settings) as publisher:
        with Meter(b, n, args.profile) as meter:
            if args.api == "gather":
                results = await asyncio.gather(*(publisher.publish(payload) for _ in range(n)))
                seqs = [r.seq for r in results]
            elif args.api == "submit":
                seqs = []
                pending: collections.deque[asyncio.Future[nervebus.PublishResult]] = collections.deque()
                for _ in range(n):
                    pending.append(await publisher.submit(payload))
                    while pending and pending[0].done():
                        seqs.append(pending.popleft().result().seq)
                for future in pending:
                    seqs.append((await future).seq)
            else:
                seqs = await publish_batches(publisher, payload, n, args.batch, args.depth)
        stats = publisher.stats
    if len(seqs) != n or len(set(seqs)) != n:
        raise SystemExit(f"expected {n} distinct seqs, got {len(set(seqs))}")
    return meter.report("publish", api=args.api, packs=stats.packs, retries=stats.retries)


async def publish_batches(
    publisher: nervebus.Publisher, payload: bytes, n: int, batch: int, depth: int
) -> list[int]:
    """``publish_many()`` on ``batch``-message chunks, ``depth`` of them in flight, in order."""
    seqs: list[int] = []
    chunks: collections.deque[asyncio.Task[list[nervebus.PublishResult]]] = collections.deque()
    for start in range(0, n, batch):
        chunks.append(asyncio.ensure_future(publisher.publish_many([payload] * min(batch, n - start))))
        if len(chunks) >= depth:
            seqs.extend(r.seq for r in await chunks.popleft())
    for chunk in chunks:
        seqs.extend(r.seq for r in await chunk)
    return seqs


async def receive(client: nervebus.Client, topic: str, args: argparse.Namespace, b: Broker) -> dict[str, Any]:
    """Reads ``topic`` from the earliest seq on a new subscription, acking every message."""
    n = args.messages
    done = asyncio.get_running_loop().create_future()
    count = 0

    async def handle(message: nervebus.ReceivedMessage) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set_result(None)

    settings = nervebus.SubscriberSettings(
        start=nervebus.StartPoint.EARLIEST,
        max_messages=args.window,
        concurrency=args.concurrency,
    )
    subscriber = client.subscriber(topic, "bench", handle, settings)
    with Meter(b, n, args.profile) as meter:
        await subscriber.start()
        await done
        # Every ack written to the stream: stop() sends the last ones and closes it.
        await subscriber.stop()
    stats = subscriber.stats
    if stats.acked != n:
        raise SystemExit(f"acked {stats.acked} of {n}")
    return meter.report(
        "receive", window=args.window, concurrency=args.concurrency, redeliveries=stats.received - n
    )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the phases against a broker; returns the JSON report."""
    from google.protobuf.internal import api_implementation

    if args.otel_sdk:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "protobuf": api_implementation.Type(),
        "grpcio": grpc.__version__,
        "cpus": os.cpu_count(),
        # Other load on the machine at the start (the CPUs are shared with the broker and anything
        # else running): read the throughput figures with it.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "size": args.size,
        "otel_sdk": args.otel_sdk,
    }
    with broker(args.broker) as b:
        async with nervebus.Client(b.address) as client:
            topic = f"bench-{uuid.uuid4().hex[:8]}"
            if "publish" in args.phases or "receive" in args.phases:
                out["publish"] = await publish(client, topic, args, b)
            if "receive" in args.phases:
                out["receive"] = await receive(client, topic, args, b)
    return out


def parse_args() -> argparse.Namespace:
    """The command line (``--help`` lists it)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=200_000, help="messages per phase (200000)")
    p.add_argument("--size", type=int, default=100, help="payload bytes (100)")
    p.add_argument(
        "--api", choices=("batch", "submit", "gather"), default="batch", help="publish API (batch)"
    )
    p.add_argument("--batch", type=int, default=1000, help="messages per publish_many() call (1000)")
    p.add_argument("--depth", type=int, default=8, help="publish_many() calls in flight (8)")
    p.add_argument("--pack", type=int, default=1000, help="publisher max_messages (1000)")
    p.add_argument("--inflight", type=int, default=4, help="publisher max_inflight_packs (4)")
    p.add_argument("--window", type=int, default=1000, help="subscriber max_messages (1000)")
    p.add_argument("--concurrency", type=int, default=100, help="subscriber concurrency (100)")
    p.add_argument(
        "--phases", default="publish,receive", help="publish, receive (needs publish) or both (default)"
    )
    p.add_argument(
        "--otel-sdk",
        action="store_true",
        help="set an OpenTelemetry SDK TracerProvider (no exporter) first: the cost of the spans",
    )
    p.add_argument("--broker", help="HOST:PORT of a running broker instead of starting one")
    p.add_argument("--profile", help="write a cProfile of each phase to PROFILE.<phase>")
    return p.parse_args()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse_args())), indent=2))
