"""Publish three messages, then receive them (the README's quickstart).

Start a broker, then run: NERVEBUS_ADDRESS=127.0.0.1:7070 python examples/quickstart.py
Each run publishes three messages to the topic "quickstart-py" and receives them on its
subscription "quickstart-py-sub".
"""

import asyncio
import os

import nervebus


async def main() -> None:
    address = os.environ.get("NERVEBUS_ADDRESS", "127.0.0.1:7070")
    async with nervebus.Client(address) as client:
        # Publish: calls are batched into packs; each returns once the message is durable.
        async with client.publisher("quickstart-py") as publisher:
            for i in range(3):
                result = await publisher.publish(f"hello {i}".encode(), attributes={"n": str(i)})
                print(f"published seq={result.seq} trace_id={result.trace_id}")

        # Subscribe: the handler runs per message; returning acks it, raising nacks it.
        done = asyncio.Queue[nervebus.ReceivedMessage]()

        async def handle(message: nervebus.ReceivedMessage) -> None:
            print(f"received seq={message.seq} data={message.data.decode()} n={message.attributes['n']}")
            await done.put(message)

        settings = nervebus.SubscriberSettings(start=nervebus.StartPoint.EARLIEST)
        async with client.subscriber("quickstart-py", "quickstart-py-sub", handle, settings):
            for _ in range(3):
                await asyncio.wait_for(done.get(), timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
