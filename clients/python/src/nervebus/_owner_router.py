"""Sends each topic's calls to the broker that owns it, for clients made with ``direct_to_owner``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from .gen.nervebus.v1 import publisher_pb2_grpc, subscriber_pb2_grpc

#: Trailer of an UNAVAILABLE naming the broker that owns the call's topic (``--cluster``).
OWNER_TRAILER = "nervebus-owner"

#: How long a located owner is trusted before it is asked again, in seconds: an owner that
#: handed a topic over forwards the calls it still gets, so nothing fails, but they take a detour.
RELOCATE_AFTER = 10.0


@dataclass(frozen=True)
class Stubs:
    """The publisher and subscriber stubs of one broker connection."""

    publisher: Any
    subscriber: Any
    channel: grpc.aio.Channel


def stubs_of(channel: grpc.aio.Channel) -> Stubs:
    """The stubs on ``channel``."""
    # The generated stubs are untyped (grpcio-tools writes no .pyi for *_pb2_grpc.py).
    return Stubs(
        publisher_pb2_grpc.PublisherServiceStub(channel),  # type: ignore[no-untyped-call]
        subscriber_pb2_grpc.SubscriberServiceStub(channel),  # type: ignore[no-untyped-call]
        channel,
    )


class OwnerRouter:
    """Which broker each topic's publishes and Receive streams go to (several brokers, ``--cluster``).

    Owners are found with LocateTopic through the client's own broker. Until a topic's owner is
    known, and whenever it is in doubt, its calls go to the own broker, which forwards them: no
    call waits for a lookup. An UNAVAILABLE naming the owner in its trailer moves the topic
    there; any other UNAVAILABLE (the owner died, a stream ended because the topic moved) sends
    it back to the own broker and asks again. The publisher's retries (same message ids) and the
    subscriber's reconnects do the rest.
    """

    def __init__(
        self,
        home: grpc.aio.Channel,
        home_address: str,
        open_channel: Callable[[str], grpc.aio.Channel],
        locate: Callable[[str], Awaitable[str]],
    ) -> None:
        self._home = stubs_of(home)
        self._home_address = home_address
        self._open_channel = open_channel
        self._locate = locate
        self._others: dict[str, Stubs] = {}
        self._owners: dict[str, tuple[str, float]] = {}  # topic -> (address, "" for home; when)
        self._locating: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def stubs(self, topic: str) -> Stubs:
        """The stubs to call for ``topic`` now."""
        known = self._owners.get(topic)
        if known is None or time.monotonic() - known[1] > RELOCATE_AFTER:
            self._relocate(topic)
        if known is None or known[0] == "" or self._closed:
            return self._home
        stubs = self._others.get(known[0])
        if stubs is None:
            stubs = self._others[known[0]] = stubs_of(self._open_channel(known[0]))
        return stubs

    def failed(self, topic: str, code: grpc.StatusCode | None, trailers: Any) -> None:
        """Learns from a call for ``topic`` that failed with ``code`` and trailing metadata ``trailers``."""
        if code is not grpc.StatusCode.UNAVAILABLE:
            return
        for key, value in trailers or ():
            if key == OWNER_TRAILER and value:
                self._learn(topic, str(value))
                return
        self._owners.pop(topic, None)
        self._relocate(topic)

    def owner_of(self, topic: str) -> str:
        """The broker ``topic``'s calls go to as last learnt ("" for the own broker)."""
        known = self._owners.get(topic)
        return "" if known is None else known[0]

    async def close(self) -> None:
        """Stops the lookups and closes the channels to other brokers."""
        self._closed = True
        for task in self._locating.values():
            task.cancel()
        for stubs in self._others.values():
            await stubs.channel.close()
        self._others.clear()

    def _learn(self, topic: str, address: str) -> None:
        self._owners[topic] = ("" if address == self._home_address else address, time.monotonic())

    def _relocate(self, topic: str) -> None:
        if self._closed or topic in self._locating:
            return
        self._locating[topic] = asyncio.get_running_loop().create_task(self._lookup(topic))

    async def _lookup(self, topic: str) -> None:
        try:
            # On failure the owner known so far (or the own broker) keeps the topic; the next
            # failed call, or the next after RELOCATE_AFTER, asks again.
            with contextlib.suppress(Exception):
                self._learn(topic, await self._locate(topic))
        finally:
            self._locating.pop(topic, None)
