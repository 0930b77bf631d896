"""Fixtures: a real NerveBus broker (node dist/src/cli/main.js) on a temporary SQLite file."""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

import nervebus

REPO = Path(__file__).resolve().parents[3]
# The broker's CLI; NERVEBUS_TEST_BROKER_MAIN points the tests at another build.
BROKER_MAIN = Path(os.environ.get("NERVEBUS_TEST_BROKER_MAIN") or REPO / "dist" / "src" / "cli" / "main.js")


class Broker:
    """One broker process; restartable on the same port and SQLite file."""

    def __init__(self, workdir: Path, *extra_args: str) -> None:
        self.workdir = workdir
        self.db = workdir / "nb.db"
        self.extra_args = extra_args
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = open(workdir / "broker.log", "ab")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        assert self.proc is None, "already running"
        if not BROKER_MAIN.exists():
            pytest.fail(f"{BROKER_MAIN} is missing: build the broker (cd {REPO} && npx tsc -p .)")
        cmd = [
            "node", str(BROKER_MAIN), "serve",
            "--listen", f"127.0.0.1:{self.port}",
            # Not the default HTTP port 7071, which another process may hold.
            "--http-listen", "127.0.0.1:0",
            "--store", f"sqlite:{self.db}",
            "--log-level", "warn",
            *self.extra_args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, cwd=self.workdir)
        assert self.proc.stdout is not None
        line = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.kill()
                    pytest.fail(f"broker did not start within {timeout} s; see {self.workdir}/broker.log")
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    self.kill()
                    log = (self.workdir / "broker.log").read_text(errors="replace")[-2000:]
                    pytest.fail(f"broker exited before listening:\n{log}")
                line += chunk
        text = line.decode().strip()
        prefix = "nervebus listening on "
        assert text.startswith(prefix), text
        self.port = int(text[len(prefix) :].rsplit(":", 1)[1])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (graceful), then SIGKILL if it takes too long."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._close_proc()

    def kill(self) -> None:
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait(5)
        self._close_proc()

    def _close_proc(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._log.close()

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker shared by the tests that do not restart it (each uses its own topics)."""
    b = Broker(tmp_path_factory.mktemp("broker"))
    b.start()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker for one test, which may stop and restart it."""
    b = Broker(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def topic() -> str:
    """A topic name no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def client(broker: Broker) -> AsyncIterator[nervebus.Client]:
    async with nervebus.Client(broker.address) as c:
        yield c


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Polls ``predicate`` until it holds; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
