"""The transactional outbox on a real MariaDB: write_outbox with PyMySQL and SQLAlchemy connections.

A broker with ``--outbox`` (its own store is SQLite, the outbox another database) relays what
committed transactions wrote, once, in commit order per key, with the writer's trace context; a
rolled-back write never appears.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pymysql
import pytest
import sqlalchemy
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import nervebus
from nervebus import ReceivedMessage, StartPoint, SubscriberSettings

from .conftest import REPO, Broker, wait_until

SCRIPT = REPO / "test" / "support" / "start-mariadb.sh"


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway MariaDB (or NERVEBUS_TEST_MYSQL_URL's server): its mysql:// URL, no database."""
    directory = tmp_path_factory.mktemp("mariadb") / "server"
    url = subprocess.run(["bash", str(SCRIPT), str(directory)], check=True, capture_output=True, text=True)
    try:
        yield url.stdout.strip()
    finally:
        subprocess.run(["bash", str(SCRIPT), "--stop", str(directory)], check=False)


def connect(url: str, database: str | None = None) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    u = urlparse(url)
    return pymysql.connect(
        host=u.hostname or "127.0.0.1", port=u.port or 3306, user=u.username or "", password=u.password or "",
        database=database, autocommit=False,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["pymysql", "sqlalchemy"])
async def test_write_outbox(mariadb: str, tmp_path: Path, kind: str) -> None:
    database = f"outbox_py_{kind}"
    admin = connect(mariadb)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {database}")
        cur.execute(f"CREATE DATABASE {database}")
    admin.close()
    topic = f"outbox-{uuid.uuid4().hex[:8]}"
    with Broker(tmp_path, "--outbox", mariadb + database, "--outbox-gap-wait-ms", "50") as broker:
        conn = connect(mariadb, database)
        for _ in range(200):  # the broker creates the tables once its relay runs
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1 FROM nb_outbox_relay")
                break
            except pymysql.err.ProgrammingError:
                await asyncio.sleep(0.05)
        conn.rollback()
        engine = sqlalchemy.create_engine(sqlalchemy.engine.make_url(f"mysql+pymysql{mariadb[5:]}{database}"))

        span = NonRecordingSpan(
            SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, TraceFlags(1))
        )

        def write(data: str, commit: bool, traced: bool = False) -> int:
            token = otel_context.attach(trace.set_span_in_context(span)) if traced else None
            try:
                if kind == "pymysql":
                    conn.begin()
                    row = nervebus.write_outbox(conn, topic, data, ordering_key="k", attributes={"kind": "t"})
                    conn.commit() if commit else conn.rollback()
                    return row
                with engine.connect() as sa:
                    tx = sa.begin()
                    row = nervebus.write_outbox(
                        sa, topic, data.encode(), ordering_key="k", attributes={"kind": "t"}
                    )
                    tx.commit() if commit else tx.rollback()
                    return row
            finally:
                if token is not None:
                    otel_context.detach(token)

        write("rolled back", commit=False)
        first = write("first", commit=True, traced=True)
        for i in range(5):
            write(f"k-{i}", commit=True)

        received: list[ReceivedMessage] = []

        async def handle(message: ReceivedMessage) -> None:
            received.append(message)

        async with nervebus.Client(broker.address) as client:
            settings = SubscriberSettings(start=StartPoint.EARLIEST, concurrency=1)
            async with client.subscriber(topic, "check", handle, settings):
                await wait_until(lambda: any(m.data == b"k-4" for m in received), timeout=30)
        assert [m.data for m in received] == [b"first", b"k-0", b"k-1", b"k-2", b"k-3", b"k-4"]
        assert received[0].trace_id == "0af7651916cd43dd8448eb211c80319c"
        assert received[0].attributes["kind"] == "t"
        assert received[0].ordering_key == "k"
        assert received[0].message_id.startswith("outbox/") and received[0].message_id.endswith(f"/{first}")
        for _ in range(100):
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM nb_outbox")
                (left,) = cur.fetchone()  # type: ignore[misc]
            conn.rollback()
            if left == 0:
                break
            await asyncio.sleep(0.05)
        assert left == 0, "relayed rows are deleted from the outbox"
        conn.close()
        engine.dispose()
