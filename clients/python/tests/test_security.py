"""TLS + token and mTLS against real brokers: certificates from the repository's make-certs.sh."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import nervebus
from nervebus import ReceivedMessage, StartPoint, SubscriberSettings, sync

from .conftest import REPO, Broker

TOKEN = "python-client-token-2b8e"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, the broker's and a "py-client" certificate, a tokens file and a policy."""
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(
        ["bash", str(REPO / "scripts" / "make-certs.sh"), str(d), "py-client"],
        check=True,
        capture_output=True,
    )
    (d / "tokens").write_text(f"{hashlib.sha256(TOKEN.encode()).hexdigest()} py-user\n")
    rules = [{"allow": ["publish", "subscribe"], "topics": ["py-*"]}]
    (d / "policy.json").write_text(json.dumps({"principals": {"py-user": rules, "py-client": rules}}))
    return d


def _broker(tmp_path: Path, pki: Path, *args: str) -> Iterator[Broker]:
    tls = ("--tls-cert", str(pki / "server.crt"), "--tls-key", str(pki / "server.key"))
    with Broker(tmp_path, *tls, "--auth-policy", str(pki / "policy.json"), *args) as b:
        yield b


@pytest.fixture
def token_broker(tmp_path: Path, pki: Path) -> Iterator[Broker]:
    yield from _broker(tmp_path, pki, "--auth-tokens", str(pki / "tokens"))


@pytest.fixture
def mtls_broker(tmp_path: Path, pki: Path) -> Iterator[Broker]:
    yield from _broker(tmp_path, pki, "--tls-client-ca", str(pki / "ca.crt"))


async def _round_trip(client: nervebus.Client, topic: str) -> bytes:
    async with client.publisher(topic) as publisher:
        await publisher.publish(b"secret")
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handle(message: ReceivedMessage) -> None:
        if not got.done():
            got.set_result(message.data)

    async with client.subscriber(topic, "s", handle, SubscriberSettings(start=StartPoint.EARLIEST)):
        return await asyncio.wait_for(got, 20)


async def test_tls_with_a_token_source(token_broker: Broker, pki: Path) -> None:
    calls = 0
    lock = threading.Lock()

    def source() -> str:
        nonlocal calls
        with lock:
            calls += 1
        return TOKEN

    tls = nervebus.TLS.from_files(ca=pki / "ca.crt")
    async with nervebus.Client(token_broker.address, tls=tls, token=source) as client:
        assert await _round_trip(client, "py-token") == b"secret"
    assert calls >= 2, f"the token source ran {calls} times"

    async with nervebus.Client(token_broker.address, tls=tls) as anonymous:
        with pytest.raises(nervebus.StatusError) as caught:
            async with anonymous.publisher("py-anon") as publisher:
                await publisher.publish(b"x")
        assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(ValueError, match="over TLS only"):
        nervebus.Client(token_broker.address, token=TOKEN)


async def test_mutual_tls(mtls_broker: Broker, pki: Path) -> None:
    tls = nervebus.TLS.from_files(ca=pki / "ca.crt", cert=pki / "py-client.crt", key=pki / "py-client.key")
    async with nervebus.Client(mtls_broker.address, tls=tls) as client:
        assert await _round_trip(client, "py-mtls") == b"secret"
        with pytest.raises(nervebus.StatusError) as caught:
            async with client.publisher("elsewhere") as publisher:
                await publisher.publish(b"x")
        assert caught.value.code is grpc.StatusCode.PERMISSION_DENIED
        assert '"py-client" (certificate)' in caught.value.details


def test_sync_client_with_tls_and_token(token_broker: Broker, pki: Path) -> None:
    tls = nervebus.TLS.from_files(ca=pki / "ca.crt")
    with sync.Client(token_broker.address, tls=tls, token=TOKEN) as client:
        with client.publisher("py-sync") as publisher:
            assert publisher.publish(b"hello").seq == 1
