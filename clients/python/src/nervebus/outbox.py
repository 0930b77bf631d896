"""The transactional outbox: messages written in the application's own MySQL transaction.

The broker, started with ``--outbox mysql://…/DB`` naming the application's database, publishes
each ``nb_outbox`` row once, if and only if the transaction that wrote it commits (see the
README's "Transactional outbox").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol, cast

from .tracing import TRACEPARENT, inject_context

#: The statements of :func:`write_outbox`, the same in the Go and TypeScript clients (in the
#: ``%s`` parameter style of PyMySQL and mysqlclient): lock the ordering key, so transactions with
#: one key commit in id order, then insert the row.
OUTBOX_LOCK_KEY_SQL = (
    "INSERT INTO nb_outbox_key (key_hash) VALUES (UNHEX(SHA2(%s, 256)))"
    " ON DUPLICATE KEY UPDATE key_hash = key_hash"
)
OUTBOX_INSERT_SQL = "INSERT INTO nb_outbox (topic, ordering_key, attributes, data) VALUES (%s, %s, %s, %s)"


class _Cursor(Protocol):
    lastrowid: Any

    def execute(self, query: str, args: Any = ...) -> Any: ...
    def close(self) -> Any: ...


class _DbApiConnection(Protocol):
    def cursor(self) -> Any: ...


def write_outbox(
    conn: Any,
    topic: str,
    data: bytes | str,
    *,
    attributes: Mapping[str, str] | None = None,
    ordering_key: str = "",
) -> int:
    """Writes a message for ``topic`` into ``nb_outbox`` inside the caller's open transaction.

    Args:
        conn: a PyMySQL (or mysqlclient) connection, or a SQLAlchemy ``Connection`` on a MySQL
            dialect, with a transaction begun and not yet committed: the message is published
            if and only if that transaction commits.
        topic: the topic the broker publishes the message to.
        data: the payload (``str`` is encoded as UTF-8).
        attributes: message attributes; the current OpenTelemetry span context is added as
            ``traceparent`` unless they carry one.
        ordering_key: messages with the same key are delivered in the order their transactions
            committed. The key's row in ``nb_outbox_key`` stays locked until the transaction
            ends: write outbox rows after the statements that lock your own rows.

    Returns:
        The row id.

    Raises:
        The driver's error.
    """
    attrs = dict(attributes or {})
    if TRACEPARENT not in attrs:
        inject_context(attrs)
    payload = data.encode() if isinstance(data, str) else bytes(data)
    params = (topic, ordering_key, json.dumps(attrs) if attrs else None, payload)
    if hasattr(conn, "exec_driver_sql"):  # SQLAlchemy Connection
        if ordering_key:
            conn.exec_driver_sql(OUTBOX_LOCK_KEY_SQL, (ordering_key,))
        return int(conn.exec_driver_sql(OUTBOX_INSERT_SQL, params).lastrowid)
    cursor = cast(_Cursor, cast(_DbApiConnection, conn).cursor())
    try:
        if ordering_key:
            cursor.execute(OUTBOX_LOCK_KEY_SQL, (ordering_key,))
        cursor.execute(OUTBOX_INSERT_SQL, params)
        return int(cursor.lastrowid)
    finally:
        cursor.close()
