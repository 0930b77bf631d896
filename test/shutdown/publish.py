"""The Python publisher of the shutdown test (test/shutdown/).

It publishes messages with ids and payloads ``<prefix>-0``, ``<prefix>-1``, … to one topic with
the repository's Python client, ``--window`` at a time, until its standard input closes. After
each window's answers it prints ``answered N`` (N messages published so far); at the end it
prints one JSON line: how many messages it published, how many of them failed (with the first
errors), and how many the broker reported as duplicates (a retry of a pack that had landed
before the broker went away).

Run with the client's venv: ``clients/python/.venv/bin/python test/shutdown/publish.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import nervebus


async def stdin_closed() -> None:
    """Returns once standard input reaches its end."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def main(args: argparse.Namespace) -> None:
    """Publishes until standard input closes, then prints the summary line."""
    published = failed = duplicates = 0
    errors: list[str] = []
    stop = asyncio.create_task(stdin_closed())
    # Retries go on for as long as a pack needs: the test, not the client, bounds the run.
    settings = nervebus.PublisherSettings(retry=nervebus.RetrySettings(timeout=300.0))
    async with nervebus.Client(args.addr) as client:
        async with client.publisher(args.topic, settings) as publisher:
            while not stop.done():
                ids = [f"{args.prefix}-{published + j}" for j in range(args.window)]
                published += len(ids)
                results = await asyncio.gather(
                    *(publisher.publish(i, message_id=i) for i in ids), return_exceptions=True
                )
                for r in results:
                    if isinstance(r, BaseException):
                        failed += 1
                        if len(errors) < 5:
                            errors.append(repr(r))
                    elif r.outcome is nervebus.Outcome.DUPLICATE:
                        duplicates += 1
                print(f"answered {published}", flush=True)
    summary = {
        "lang": "python",
        "published": published,
        "failed": failed,
        "duplicates": duplicates,
        "errors": errors,
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", required=True, help="broker address host:port")
    parser.add_argument("--topic", default="shutdown")
    parser.add_argument("--prefix", default="python", help="message id and payload prefix")
    parser.add_argument("--window", type=int, default=100, help="messages published before waiting")
    asyncio.run(main(parser.parse_args()))
