"""Acks and terminations the broker may not have yet, kept for the redelivery they would stop."""

from __future__ import annotations

from .types import SettleAction


class UnconfirmedSettles:
    """Settlements of messages the application is done with, kept until the broker has them.

    A redelivery of such a message (its stream ended before the broker read the settlement)
    gets the settlement again instead of going to the handler a second time. Only a later
    attempt is such a redelivery: the broker counts on from the settled one while the message
    is unacked, and starts again at 1 when a seek back replays an acked message. A settlement
    is known to be applied once the broker confirms the ack (``confirm_acks``) or reports a
    floor at or above its seq (on subscribe and in heartbeats); without either, it is forgotten
    only when ``limit`` newer ones push it out. Loop thread only.
    """

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        # seq -> (action, settled attempt), oldest first (dicts keep insertion order).
        self._by_seq: dict[int, tuple[SettleAction, int]] = {}
        self._floor = 0

    def __len__(self) -> int:
        return len(self._by_seq)

    def add(self, seq: int, attempt: int, action: SettleAction) -> None:
        """Records the settlement of delivery ``attempt`` of ``seq`` (replacing an earlier one)."""
        if seq <= self._floor:
            return
        self._by_seq.pop(seq, None)
        self._by_seq[seq] = (action, attempt)
        if len(self._by_seq) > self._limit:
            del self._by_seq[next(iter(self._by_seq))]

    def redelivered(self, seq: int, attempt: int) -> SettleAction | None:
        """The kept settlement, if delivery ``attempt`` of ``seq`` is a redelivery of it.

        A delivery that is not (not a later attempt) is new to the application: the kept
        settlement is forgotten.
        """
        kept = self._by_seq.get(seq)
        if kept is None:
            return None
        if attempt > kept[1]:
            return kept[0]
        del self._by_seq[seq]
        return None

    def forget(self, seq: int) -> None:
        """Drops the settlement of ``seq`` (the broker confirmed or ignored the ack)."""
        self._by_seq.pop(seq, None)

    def set_floor(self, floor: int) -> None:
        """Every seq up to ``floor`` is acked: none of them comes again (but as a seek's replay)."""
        if floor > self._floor:
            for seq in [s for s in self._by_seq if s <= floor]:
                del self._by_seq[seq]
        self._floor = floor

    def acks(self) -> list[int]:
        """The seqs of the kept acks (to send again on a new stream)."""
        return [seq for seq, (action, _) in self._by_seq.items() if action is SettleAction.ACK]
