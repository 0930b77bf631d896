"""Failure handling against an in-process fake broker (grpc.aio server on 127.0.0.1).

The real broker cannot be told to fail a given call; the fake one injects errors, silence and
dropped streams so retries, ordering under retry, idle detection and ack re-sending can be
checked deterministically.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
import pytest

import nervebus
from nervebus import (
    Backoff,
    DeliveryState,
    PublisherSettings,
    ReceivedMessage,
    RetrySettings,
    SubscriberSettings,
)
from nervebus.gen.nervebus.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    message_pb2,
    publisher_pb2,
    publisher_pb2_grpc,
    subscriber_pb2,
    subscriber_pb2_grpc,
)

from .conftest import wait_until

FAST = RetrySettings(backoff=Backoff(initial=0.01, maximum=0.05), timeout=10)
TRACE = "0af7651916cd43dd8448eb211c80319c"


class FakePublisher(publisher_pb2_grpc.PublisherServiceServicer):
    """Appends packs; fails the next calls with the codes queued in ``failures``."""

    def __init__(self) -> None:
        self.failures: list[grpc.StatusCode] = []
        # Failures for packs whose first message has this payload.
        self.fail_data: dict[bytes, list[grpc.StatusCode]] = {}
        self.requests: list[publisher_pb2.SendPackRequest] = []
        self.appended: list[message_pb2.Message] = []
        self.drop_results = False

    async def SendPack(
        self, request: publisher_pb2.SendPackRequest, context: grpc.aio.ServicerContext
    ) -> publisher_pb2.SendPackResponse:
        self.requests.append(request)
        if self.failures:
            await context.abort(self.failures.pop(0), "injected failure")
        planned = self.fail_data.get(request.messages[0].data)
        if planned:
            await context.abort(planned.pop(0), "injected failure")
        first = len(self.appended) + 1
        self.appended.extend(request.messages)
        results = [
            publisher_pb2.MessageResult(
                outcome=publisher_pb2.MessageResult.OUTCOME_APPENDED, seq=first + i, trace_id=TRACE
            )
            for i in range(len(request.messages))
        ]
        if self.drop_results:
            results = results[:-1]
        return publisher_pb2.SendPackResponse(first_seq=first, last_seq=len(self.appended), results=results)


StreamScript = Callable[[int, grpc.aio.ServicerContext, "FakeSubscriber"], Awaitable[None]]


class FakeSubscriber(subscriber_pb2_grpc.SubscriberServiceServicer):
    """Runs ``script(stream_index, context, self)`` for each Receive stream."""

    def __init__(self, script: StreamScript) -> None:
        self.script = script
        self.streams = 0
        self.requests: list[tuple[int, subscriber_pb2.ReceiveRequest]] = []

    async def Receive(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        index = self.streams
        self.streams += 1
        first = await context.read()
        assert first.HasField("subscribe")
        self.requests.append((index, first))
        await context.write(
            subscriber_pb2.ReceiveResponse(subscribed=subscriber_pb2.Subscribed(created=index == 0))
        )

        async def pump() -> None:
            while True:
                req = await context.read()
                if req is grpc.aio.EOF:
                    return
                self.requests.append((index, req))

        reader = asyncio.ensure_future(pump())
        try:
            await self.script(index, context, self)
        finally:
            reader.cancel()

    def acks(self, stream: int | None = None) -> list[int]:
        return [s for i, r in self.requests if stream is None or i == stream for s in r.ack_seqs]


def delivery(seq: int, attempt: int = 1) -> subscriber_pb2.ReceiveResponse:
    return subscriber_pb2.ReceiveResponse(
        deliveries=[message_pb2.Delivery(seq=seq, data=f"m{seq}".encode(), attempt=attempt, trace_id=TRACE)]
    )


class FakeAdmin(admin_pb2_grpc.AdminServiceServicer):
    """Answers GetMessage with a delivery in ``state``, such as one only a newer broker sends."""

    def __init__(self, state: int) -> None:
        self.state = state

    async def GetMessage(
        self, request: admin_pb2.GetMessageRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetMessageResponse:
        return admin_pb2.GetMessageResponse(
            message=admin_pb2.StoredMessage(
                message=message_pb2.Delivery(seq=request.seq, data=b"x", trace_id=TRACE),
                deliveries=[admin_pb2.MessageDelivery(subscription="s", state=self.state)],  # type: ignore[arg-type]
            )
        )


async def serve(*servicers: Any) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    for servicer in servicers:
        if isinstance(servicer, FakePublisher):
            publisher_pb2_grpc.add_PublisherServiceServicer_to_server(servicer, server)
        elif isinstance(servicer, FakeAdmin):
            admin_pb2_grpc.add_AdminServiceServicer_to_server(servicer, server)
        else:
            subscriber_pb2_grpc.add_SubscriberServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def fake_publisher() -> AsyncIterator[tuple[FakePublisher, nervebus.Client]]:
    fake = FakePublisher()
    server, address = await serve(fake)
    async with nervebus.Client(address) as client:
        yield fake, client
    await server.stop(0)


async def test_retries_keep_message_ids_and_payload(
    fake_publisher: tuple[FakePublisher, nervebus.Client],
) -> None:
    fake, client = fake_publisher
    # CANCELLED without the client cancelling: what a restarting broker's RST_STREAM looked
    # like to clients, an unknown outcome like UNAVAILABLE.
    fake.failures = [
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
    ]
    async with client.publisher("t", PublisherSettings(retry=FAST)) as publisher:
        results = await asyncio.gather(publisher.publish(b"a"), publisher.publish(b"b", message_id="mine"))
        assert publisher.stats.retries == 3 and publisher.stats.attempts == 4
    assert len(fake.requests) == 4
    assert all(r == fake.requests[0] for r in fake.requests), "retries resend the same pack"
    ids = [m.message_id for m in fake.requests[0].messages]
    assert len(ids[0]) == 32 and ids[1] == "mine"
    assert [r.message_id for r in results] == ids
    assert [r.seq for r in results] == [1, 2]


async def test_non_retryable_error_fails_at_once(
    fake_publisher: tuple[FakePublisher, nervebus.Client],
) -> None:
    fake, client = fake_publisher
    fake.failures = [grpc.StatusCode.PERMISSION_DENIED]
    async with client.publisher("t", PublisherSettings(retry=FAST)) as publisher:
        with pytest.raises(nervebus.StatusError) as info:
            await publisher.publish(b"a")
        assert info.value.code is grpc.StatusCode.PERMISSION_DENIED
        assert info.value.details == "injected failure"
        assert publisher.stats.failed_messages == 1
        # The publisher goes on working after a failed pack.
        assert (await publisher.publish(b"b")).seq == 1
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    "lost_as", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL]
)
async def test_max_attempts(
    fake_publisher: tuple[FakePublisher, nervebus.Client], lost_as: grpc.StatusCode
) -> None:
    fake, client = fake_publisher
    fake.failures = [lost_as] * 5
    retry = RetrySettings(backoff=Backoff(initial=0.01), max_attempts=3)
    async with client.publisher("t", PublisherSettings(retry=retry)) as publisher:
        with pytest.raises(nervebus.StatusError) as info:
            await publisher.publish(b"a")
    # A CANCELLED the client did not cause, or an INTERNAL, is an unknown outcome, reported as
    # UNAVAILABLE.
    assert info.value.code is grpc.StatusCode.UNAVAILABLE
    assert "injected failure" in info.value.details
    assert len(fake.requests) == 3


async def test_ordering_key_waits_for_the_retry_of_an_earlier_pack(
    fake_publisher: tuple[FakePublisher, nervebus.Client],
) -> None:
    fake, client = fake_publisher
    fake.fail_data[b"k1"] = [grpc.StatusCode.UNAVAILABLE]  # k1's pack fails once
    settings = PublisherSettings(max_messages=1, max_inflight_packs=4, retry=FAST)
    async with client.publisher("t", settings) as publisher:
        results = await asyncio.gather(
            publisher.publish(b"k1", ordering_key="k"),
            publisher.publish(b"free", ordering_key=""),
            publisher.publish(b"k2", ordering_key="k"),
            publisher.publish(b"other", ordering_key="o"),
        )
    order = [m.data for m in fake.appended]
    assert order.index(b"k1") < order.index(b"k2"), order
    # Packs without the failed key did not wait for its retry.
    assert order.index(b"free") < order.index(b"k1") and order.index(b"other") < order.index(b"k1")
    assert results[0].seq < results[2].seq


async def test_wrong_result_count_is_an_error(fake_publisher: tuple[FakePublisher, nervebus.Client]) -> None:
    fake, client = fake_publisher
    fake.drop_results = True
    async with client.publisher("t") as publisher:
        with pytest.raises(nervebus.NerveBusError, match="results for 2 messages"):
            await asyncio.gather(publisher.publish(b"a"), publisher.publish(b"b"))


async def test_close_timeout_fails_what_is_still_waiting(
    fake_publisher: tuple[FakePublisher, nervebus.Client],
) -> None:
    fake, client = fake_publisher
    fake.failures = [grpc.StatusCode.UNAVAILABLE] * 1000
    retry = RetrySettings(backoff=Backoff(initial=0.05, maximum=0.05), timeout=None)
    publisher = client.publisher("t", PublisherSettings(retry=retry))
    pending = asyncio.ensure_future(publisher.publish(b"a"))
    await asyncio.sleep(0.1)
    await publisher.close(timeout=0.2)
    with pytest.raises(nervebus.PublisherClosedError):
        await pending


async def test_idle_stream_is_replaced() -> None:
    async def silent(index: int, context: grpc.aio.ServicerContext, fake: FakeSubscriber) -> None:
        await asyncio.sleep(30)  # subscribed, then not a word (no heartbeats)

    fake = FakeSubscriber(silent)
    server, address = await serve(fake)
    try:
        async with nervebus.Client(address) as client:

            async def handle(message: ReceivedMessage) -> None:
                pass

            settings = SubscriberSettings(idle_timeout=0.4, reconnect_backoff=Backoff(initial=0.01))
            subscriber = client.subscriber("t", "s", handle, settings)
            await subscriber.start(timeout=5)
            await wait_until(lambda: fake.streams >= 3, timeout=5)
            assert subscriber.stats.reconnects >= 2
            await subscriber.stop(timeout=1)
    finally:
        await server.stop(0)


async def test_reconnect_keeps_one_handler_run_and_resends_unconfirmed_acks() -> None:
    async def script(index: int, context: grpc.aio.ServicerContext, fake: FakeSubscriber) -> None:
        if index == 0:
            await context.write(delivery(1))
            await asyncio.sleep(0.2)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "broker restarting")
        # The new stream gets the same message again (its lease moved here); no confirmations.
        await context.write(delivery(1, attempt=2))
        await asyncio.sleep(30)

    fake = FakeSubscriber(script)
    server, address = await serve(fake)
    calls: list[int] = []
    try:
        async with nervebus.Client(address) as client:

            async def handle(message: ReceivedMessage) -> None:
                calls.append(message.attempt)
                await asyncio.sleep(0.6)

            settings = SubscriberSettings(confirm_acks=True, reconnect_backoff=Backoff(initial=0.01))
            subscriber = client.subscriber("t", "s", handle, settings)
            await subscriber.start(timeout=5)
            await wait_until(lambda: fake.acks(1) == [1], timeout=5)
            assert calls == [1], "the redelivered copy of a message in progress is not handled twice"
            assert subscriber.stats.received == 2
            # The broker dropped the stream again before confirming: the ack is sent again.
            assert subscriber._unconfirmed == {1}
            await subscriber.stop(timeout=0.5)
    finally:
        await server.stop(0)


async def test_a_copy_of_an_acked_message_is_not_handled_again() -> None:
    async def script(index: int, context: grpc.aio.ServicerContext, fake: FakeSubscriber) -> None:
        if index == 0:
            await context.write(delivery(1))
            await wait_until(lambda: fake.acks(0) == [1], timeout=5)
            # Gone before it confirmed the ack (a broker restart) ...
            await context.abort(grpc.StatusCode.UNAVAILABLE, "broker restarting")
        # ... and the new stream is leased the message again before the broker reads the ack.
        await context.write(delivery(1))
        await asyncio.sleep(30)

    fake = FakeSubscriber(script)
    server, address = await serve(fake)
    calls: list[int] = []
    try:
        async with nervebus.Client(address) as client:

            async def handle(message: ReceivedMessage) -> None:
                calls.append(message.seq)

            settings = SubscriberSettings(confirm_acks=True, reconnect_backoff=Backoff(initial=0.01))
            subscriber = client.subscriber("t", "s", handle, settings)
            await subscriber.start(timeout=5)
            await wait_until(lambda: 1 in fake.acks(1) and subscriber.stats.received == 2, timeout=5)
            await asyncio.sleep(0.2)
            assert calls == [1], "the copy of an acked message leased again is not handled twice"
            assert fake.acks(1) == [1], "the unconfirmed ack is sent again, once"
            await subscriber.stop(timeout=0.5)
    finally:
        await server.stop(0)


async def test_unknown_status_stops_the_subscriber() -> None:
    async def deny(index: int, context: grpc.aio.ServicerContext, fake: FakeSubscriber) -> None:
        await asyncio.sleep(0.1)
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no access")

    fake = FakeSubscriber(deny)
    server, address = await serve(fake)
    try:
        async with nervebus.Client(address) as client:

            async def handle(message: ReceivedMessage) -> None:
                pass

            subscriber = client.subscriber("t", "s", handle)
            await subscriber.start(timeout=5)
            with pytest.raises(nervebus.StatusError) as info:
                await asyncio.wait_for(subscriber.wait(), 5)
            assert info.value.code is grpc.StatusCode.PERMISSION_DENIED
            assert not subscriber.running
            assert fake.streams == 1
            await subscriber.stop()  # harmless after a failure
    finally:
        await server.stop(0)


# Defect: a delivery state the client does not know raised ValueError from get_message, so a
# client older than STATE_DEAD_LETTERED could not browse a dead-lettered message at all. The
# real broker sends only known states, hence the fake.
async def test_a_delivery_state_from_a_newer_broker_reads_unspecified() -> None:
    server, address = await serve(FakeAdmin(state=99))
    try:
        async with nervebus.Client(address) as client:
            m = await client.admin.get_message("t", 1)
        assert [(d.subscription, d.state) for d in m.deliveries] == [("s", DeliveryState.UNSPECIFIED)]
    finally:
        await server.stop(0)
