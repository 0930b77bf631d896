"""The bookkeeping of settlements the broker may not have yet."""

from __future__ import annotations

from nervebus._unconfirmed_settles import UnconfirmedSettles
from nervebus.types import SettleAction


def test_kept_settlements_limit_attempts_and_floor() -> None:
    kept = UnconfirmedSettles(3)
    for seq in range(1, 6):
        kept.add(seq, 1, SettleAction.ACK)
    kept.add(3, 1, SettleAction.TERMINATE)  # settled again: now the newest
    assert sorted(kept.acks()) == [4, 5], "the limit keeps the 3 newest; 3 is a termination"
    assert kept.redelivered(3, 2) is SettleAction.TERMINATE
    # A seek back replays an acked message as attempt 1: it is new, and forgotten here.
    assert kept.redelivered(4, 1) is None
    assert kept.redelivered(4, 2) is None
    kept.set_floor(5)
    assert len(kept) == 0
    kept.add(5, 1, SettleAction.ACK)  # at or below the floor: already applied
    assert len(kept) == 0
