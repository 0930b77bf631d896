"""The README's quickstart is examples/quickstart.py, and it runs against a real broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import Broker

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "quickstart.py"


def test_readme_shows_the_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    example = EXAMPLE.read_text(encoding="utf-8")
    # The example minus its module docstring is a code block of the README.
    body = example.split('"""', 2)[2].lstrip("\n")
    assert body in blocks, "README.md's quickstart block differs from examples/quickstart.py"


def test_quickstart_runs(broker: Broker) -> None:
    env = {**os.environ, "NERVEBUS_ADDRESS": broker.address}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    published = [line for line in lines if line.startswith("published seq=")]
    received = [line for line in lines if line.startswith("received seq=")]
    assert len(published) == 3 and len(received) == 3, proc.stdout
    for i, line in enumerate(received):
        assert f"data=hello {i} n={i}" in line
    assert re.search(r"trace_id=[0-9a-f]{32}$", published[0])
