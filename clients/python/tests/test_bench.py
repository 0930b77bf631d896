"""The benchmark program runs and reports what BENCHMARKS.md quotes (a small run; no timing checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Broker

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench.py"


@pytest.mark.parametrize("api", ["batch", "submit"])
def test_bench_reports_publish_and_receive(broker: Broker, api: str) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--broker", broker.address, "--messages", "3000", "--api", api],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(out.stdout)
    assert report["protobuf"] in ("upb", "cpp", "python")
    for phase in ("publish", "receive"):
        figures = report[phase]
        assert figures["messages"] == 3000
        assert figures["msg_per_s"] > 0 and figures["client_cpu_us_per_msg"] > 0
        assert figures["max_rss_mb"] > 0
    assert report["publish"]["api"] == api
    assert report["receive"]["redeliveries"] == 0
