"""NerveBus client: asyncio publisher and subscriber over gRPC.

The main names::

    nervebus.Client            connection to a broker; makes publishers and subscribers
    nervebus.Publisher         batches publish(), submit() and publish_many() into SendPack calls, retries
    nervebus.Subscriber        runs a handler per message with flow control and lease extension
    nervebus.Admin             topics, subscriptions, pause/resume, purge, seek, stats, browse (client.admin)
    nervebus.sync              the same for code that is not async (background event loop)
    nervebus.write_outbox      a message in your own MySQL transaction (transactional outbox)

Generated protobuf modules live in ``nervebus.gen.nervebus.v1``.
"""

from ._version import __version__
from .admin import Admin, ConsumerStats, Stats, Subscription, SubscriptionStats, Topic, TopicStats
from .browse import DeliveryState, MessageDelivery, MessagePage, StoredMessage
from .client import DEFAULT_CHANNEL_OPTIONS, Client
from .credentials import TLS, TokenSource
from .errors import (
    AckNotConfirmedError,
    MessageSettledError,
    NerveBusError,
    OrderingKeyPausedError,
    PublisherClosedError,
    StatusError,
    SubscriberError,
)
from .outbox import OUTBOX_INSERT_SQL, OUTBOX_LOCK_KEY_SQL, write_outbox
from .publisher import Publishable, Publisher, PublisherSettings, PublisherStats
from .retry import DEFAULT_RETRYABLE_CODES, Backoff, RetrySettings
from .stream_publisher import StreamPublisher
from .subscriber import DEFAULT_RECONNECT_CODES, Handler, Subscriber, SubscriberSettings, SubscriberStats
from .typed import TopicSchema, TypedPublisher, descriptor_set_of, typed_handler
from .types import (
    AckResult,
    Message,
    Outcome,
    Priority,
    PublishResult,
    ReceivedMessage,
    SettleAction,
    StartPoint,
)

__all__ = [
    "OUTBOX_INSERT_SQL",
    "OUTBOX_LOCK_KEY_SQL",
    "DEFAULT_CHANNEL_OPTIONS",
    "DEFAULT_RECONNECT_CODES",
    "DEFAULT_RETRYABLE_CODES",
    "AckNotConfirmedError",
    "AckResult",
    "Admin",
    "Backoff",
    "Client",
    "ConsumerStats",
    "DeliveryState",
    "Handler",
    "Message",
    "MessageDelivery",
    "MessagePage",
    "MessageSettledError",
    "NerveBusError",
    "OrderingKeyPausedError",
    "Outcome",
    "Priority",
    "PublishResult",
    "Publishable",
    "Publisher",
    "PublisherClosedError",
    "PublisherSettings",
    "PublisherStats",
    "ReceivedMessage",
    "RetrySettings",
    "SettleAction",
    "StartPoint",
    "Stats",
    "StoredMessage",
    "StatusError",
    "StreamPublisher",
    "Subscriber",
    "SubscriberError",
    "SubscriberSettings",
    "SubscriberStats",
    "Subscription",
    "SubscriptionStats",
    "TLS",
    "TokenSource",
    "Topic",
    "TopicSchema",
    "TopicStats",
    "TypedPublisher",
    "__version__",
    "descriptor_set_of",
    "typed_handler",
    "write_outbox",
]
