"""TLS and bearer-token credentials of a connection to a broker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

__all__ = ["TLS", "TokenSource", "channel_credentials", "tls_channel_options"]

#: A function that returns the current bearer token. It runs before every call and every
#: Receive stream, in one of gRPC's threads (not on the event loop), so it must be thread-safe
#: and quick: cache the token and renew it shortly before it expires. An exception fails the call.
TokenSource = Callable[[], str]


@dataclass(frozen=True)
class TLS:
    """TLS settings, as PEM bytes: the CA to trust, and a client certificate and key (mTLS).

    Attributes:
        ca: CA certificates to trust instead of the system's roots (the broker's CA).
        cert: Client certificate chain, for a broker that wants one; with ``key``.
        key: Private key of ``cert``.
        server_name: The name the broker's certificate must carry, when it is not the target's host.
    """

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    server_name: str | None = None

    @classmethod
    def from_files(
        cls,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        server_name: str | None = None,
    ) -> TLS:
        """Reads the PEM files (``None``: not used)."""

        def read(path: str | Path | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        return cls(read(ca), read(cert), read(key), server_name)


class _BearerToken(grpc.AuthMetadataPlugin):
    """Adds ``authorization: Bearer <token>`` to every call."""

    def __init__(self, token: str | TokenSource) -> None:
        self._token = token

    def __call__(self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
        try:
            token = self._token if isinstance(self._token, str) else self._token()
        except Exception as err:  # any failure of the source fails the call
            callback((), err)
            return
        callback((("authorization", f"Bearer {token}"),), None)


def channel_credentials(
    tls: TLS | bool | None, token: str | TokenSource | None
) -> grpc.ChannelCredentials | None:
    """Credentials for TLS (``True``: the system's roots) with a bearer token on every call.

    ``None`` means plaintext. A token needs TLS: in plaintext anyone on the path could read and
    reuse it, so that raises ``ValueError``.
    """
    if tls is None or tls is False:
        if token is not None:
            raise ValueError("a token is sent over TLS only: pass tls= too")
        return None
    t = TLS() if tls is True else tls
    if (t.cert is None) != (t.key is None):
        raise ValueError("TLS.cert and TLS.key go together")
    ssl = grpc.ssl_channel_credentials(root_certificates=t.ca, private_key=t.key, certificate_chain=t.cert)
    if token is None:
        return ssl
    return grpc.composite_channel_credentials(ssl, grpc.metadata_call_credentials(_BearerToken(token)))


def tls_channel_options(tls: TLS | bool | None) -> tuple[tuple[str, Any], ...]:
    """Channel options that make TLS check ``server_name`` instead of the target's host."""
    if isinstance(tls, TLS) and tls.server_name is not None:
        return (
            ("grpc.ssl_target_name_override", tls.server_name),
            ("grpc.default_authority", tls.server_name),
        )
    return ()
