"""Exceptions raised by the NerveBus client.

Every error the broker reports arrives as a :class:`StatusError` that carries the gRPC status
code and the broker's message, so callers can branch on ``err.code`` without importing grpc
internals.
"""

from __future__ import annotations

import grpc

__all__ = [
    "AckNotConfirmedError",
    "MessageSettledError",
    "NerveBusError",
    "OrderingKeyPausedError",
    "PublisherClosedError",
    "StatusError",
    "SubscriberError",
]


class NerveBusError(Exception):
    """Base class of every exception raised by this package."""


class StatusError(NerveBusError):
    """A call or stream failed with a non-OK gRPC status.

    Attributes:
        code: The gRPC status code, e.g. ``grpc.StatusCode.INVALID_ARGUMENT``.
        details: The broker's message, which names the offending field and the limit.
        operation: What the client was doing (``"SendPack"`` or ``"Receive"``).
    """

    code: grpc.StatusCode
    details: str
    operation: str

    def __init__(self, code: grpc.StatusCode, details: str, operation: str = "") -> None:
        self.code = code
        self.details = details
        self.operation = operation
        where = f"{operation} failed: " if operation else ""
        super().__init__(f"{where}{code.name}: {details}")

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError, operation: str = "") -> StatusError:
        """Wraps a ``grpc.RpcError`` (sync or aio) into a :class:`StatusError`."""
        code_fn = getattr(err, "code", None)
        details_fn = getattr(err, "details", None)
        code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
        details = details_fn() if callable(details_fn) else str(err)
        result = cls(code or grpc.StatusCode.UNKNOWN, details or "", operation)
        result.__cause__ = err
        return result

    @property
    def status_name(self) -> str:
        """The status code's name, e.g. ``"INVALID_ARGUMENT"``."""
        return self.code.name


class OrderingKeyPausedError(StatusError):
    """A message was refused because its ordering key is paused after a failed publish.

    Later messages of a key must not overtake one that failed, so after a failure the
    publisher refuses the key's messages (those already buffered and those published later)
    until :meth:`nervebus.Publisher.resume_publish`. The code is ``FAILED_PRECONDITION``, as in
    the other clients; ``__cause__`` is the failure that paused the key.

    Attributes:
        key: The paused ordering key.
    """

    key: str

    def __init__(self, key: str, cause: BaseException) -> None:
        super().__init__(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"ordering key {key!r} is paused after a failed publish, until resume_publish(): {cause}",
            "SendPack",
        )
        self.key = key
        self.__cause__ = cause


class PublisherClosedError(NerveBusError):
    """``publish()`` was called on a publisher that is closing or closed."""


class AckNotConfirmedError(NerveBusError):
    """An ack's result: the broker did not confirm it (the ack may still have been applied).

    The subscriber stopped or failed before the confirmation came, or the broker ignored the
    ack because it had not delivered the message on the subscription.
    """


class MessageSettledError(NerveBusError):
    """An ack's result: the message had already been acked, nacked or terminated."""


class SubscriberError(NerveBusError):
    """A subscriber was used wrongly (for example started twice) or could not start in time."""


def internal_outcome_unknown(error: StatusError) -> StatusError:
    """An INTERNAL as UNAVAILABLE: for a publish, its outcome is unknown.

    It is most often the connection reset under the call: the broker's HTTP/2 layer closes a
    connection whose client resets streams too fast (nghttp2's rapid-reset protection), failing
    every call on it ("RST_STREAM with error code 2"); it may also be the broker failing
    mid-append. Either way the pack may be stored, and a retry with the same message ids settles
    it. Every INTERNAL, not only the transport's wording, which differs between gRPC C-core,
    grpc-go and grpc-js (the same rule in the three clients).
    """
    if error.code is not grpc.StatusCode.INTERNAL:
        return error
    details = f"call failed INTERNAL, outcome unknown: {error.details}"
    unknown = StatusError(grpc.StatusCode.UNAVAILABLE, details, error.operation)
    unknown.__cause__ = error
    return unknown
