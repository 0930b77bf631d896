"""A SendPack that ends INTERNAL (its connection reset under it) is retried with the same ids."""

from __future__ import annotations

from typing import Any

import grpc

import nervebus
from nervebus import Backoff, Outcome, PublisherSettings, RetrySettings
from nervebus.gen.nervebus.v1 import publisher_pb2

from .conftest import Broker

FAST = RetrySettings(backoff=Backoff(initial=0.01, maximum=0.1))

#: How C-core reports a call on a connection the broker closed: its HTTP/2 layer closes a
#: connection whose client resets streams too fast (nghttp2's rapid-reset protection).
RESET = "Received RST_STREAM with error code 2"


class ResetFirstAnswer(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Lets the first SendPack reach the broker, then fails it INTERNAL: stored, answer lost."""

    def __init__(self) -> None:
        self.packs: list[publisher_pb2.SendPackRequest] = []

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        call = await continuation(client_call_details, request)
        if not isinstance(request, publisher_pb2.SendPackRequest):
            return call
        self.packs.append(request)
        if len(self.packs) == 1:
            await call
            no_metadata = grpc.aio.Metadata()
            raise grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, no_metadata, no_metadata, RESET)
        return call


async def test_pack_reset_after_it_was_stored_is_retried_and_stored_once(broker: Broker, topic: str) -> None:
    reset = ResetFirstAnswer()
    channel = grpc.aio.insecure_channel(broker.address, interceptors=[reset])
    async with nervebus.Client(broker.address, channel=channel) as client:
        async with client.publisher(topic, PublisherSettings(retry=FAST)) as publisher:
            result = await publisher.publish(b"once")
            assert publisher.stats.retries == 1
        assert len(reset.packs) == 2
        assert reset.packs[1] == reset.packs[0], "the retry resends the pack with the same message id"
        # The broker stored the first attempt: the retry is a duplicate of it.
        assert (result.seq, result.outcome) == (1, Outcome.DUPLICATE)
        page = await client.admin.list_messages(topic)
        assert [m.data for m in page.messages] == [b"once"]
    await channel.close()
