"""Exponential backoff with jitter, for the publisher's retries and subscriber reconnects."""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass, field

import grpc

__all__ = ["DEFAULT_RETRYABLE_CODES", "Backoff", "RetrySettings"]

#: Status codes after which a SendPack is retried (with the same message ids) and a Receive
#: stream reconnects. UNAVAILABLE: the broker is restarting or unreachable, or the store is
#: down (a SendPack that ends CANCELLED without the client cancelling it, or INTERNAL, counts as
#: UNAVAILABLE: its outcome is unknown); RESOURCE_EXHAUSTED: the broker's write buffers stayed full for the
#: call's deadline.
DEFAULT_RETRYABLE_CODES: frozenset[grpc.StatusCode] = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter.

    The n-th wait (n = 0, 1, 2 …) is drawn uniformly from
    ``[(1 - jitter) * d, d]`` where ``d = min(maximum, initial * multiplier ** n)``, so waits
    grow exponentially while clients that failed together spread out.

    Attributes:
        initial: The first wait's upper bound, in seconds.
        maximum: No wait is longer than this, in seconds.
        multiplier: Growth factor per attempt (≥ 1).
        jitter: The fraction of each wait that is randomized, 0 (none) to 1 (full jitter).
    """

    initial: float = 0.1
    maximum: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < 0:
            raise ValueError("backoff times must be ≥ 0")
        if self.multiplier < 1:
            raise ValueError("backoff multiplier must be ≥ 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be between 0 and 1")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the wait after ``attempt`` failures (0-based), without jitter."""
        # Cap the exponent so huge attempt counts cannot overflow a float.
        return min(self.maximum, self.initial * self.multiplier ** min(attempt, 64))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """A jittered wait, in seconds, after ``attempt`` failures (0-based)."""
        d = self.ceiling(attempt)
        r = (rng or random).random()
        return d * (1 - self.jitter * r)


@dataclass(frozen=True)
class RetrySettings:
    """When and how long a failed SendPack is retried.

    Attributes:
        backoff: Waits between attempts.
        timeout: Give up this many seconds after the first attempt started (the last attempt
            may still run for up to the publisher's ``call_timeout``). ``None``: never give up.
        max_attempts: Give up after this many attempts in all. ``None``: no limit.
        retryable_codes: Status codes that are retried; any other fails the messages at once.
    """

    backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.1, maximum=5.0))
    timeout: float | None = 60.0
    max_attempts: int | None = None
    retryable_codes: Collection[grpc.StatusCode] = DEFAULT_RETRYABLE_CODES
