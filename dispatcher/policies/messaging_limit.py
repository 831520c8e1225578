"""The 24 h messaging limit of one business portfolio: unique recipients per MOVING 24 h.

Since October 2025 Meta sets the limit per business portfolio and all its numbers share it,
so one gate serves every number of the portfolio, whichever actor sends for them. The window
moves: a calendar-day counter would allow twice the limit across midnight.

A recipient holds a slot from its first send until ``window_s`` after its LAST send: a second
message inside the window costs nothing, but it keeps the recipient inside Meta's moving
window for another ``window_s``, so the slot must not be handed to someone else before then.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dispatcher.policies import Clock

DAY_S = 24 * 60 * 60.0


@dataclass(frozen=True, slots=True)
class Reservation:
    """The answer to a batch: who may be sent to now, who must wait, and until when."""

    admitted: list[str]
    """Everyone who may be sent to now, in the order given."""
    new: list[str]
    """The admitted who took a new slot (the rest were already in the window)."""
    deferred: list[str]
    next_slot_at: float | None
    """When the earliest slot frees (clock time); None when nothing was deferred."""


class MessagingLimitGate:
    """Exact (no sketches) count of unique recipients reserved in the moving window."""

    __slots__ = ("_clock", "_expires", "_limit", "_window")

    def __init__(
        self, limit: int | None, window_s: float = DAY_S, clock: Clock = time.monotonic
    ) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self._limit = self._check_limit(limit)
        self._window = float(window_s)
        self._clock = clock
        # recipient -> time its slot frees; insertion order == expiry order because every
        # write sets ``now + window`` with a non-decreasing ``now`` and moves the key last.
        self._expires: OrderedDict[str, float] = OrderedDict()

    @classmethod
    def from_history(
        cls,
        limit: int | None,
        history: Iterable[tuple[str, float]],
        window_s: float = DAY_S,
        clock: Clock = time.monotonic,
    ) -> MessagingLimitGate:
        """Rebuild a gate from ``(recipient, sent_at)`` pairs in clock time (any order).

        A restarted owner resumes exactly where the old one stopped.
        """
        gate = cls(limit, window_s=window_s, clock=clock)
        if limit is None:
            return gate
        latest: dict[str, float] = {}
        for recipient, sent_at in history:
            if sent_at > latest.get(recipient, -float("inf")):
                latest[recipient] = sent_at
        now = clock()
        for recipient, sent_at in sorted(latest.items(), key=lambda item: item[1]):
            expires = sent_at + gate._window
            if expires > now:
                gate._expires[recipient] = expires
        return gate

    @property
    def limit(self) -> int | None:
        """Unique recipients allowed per window; None is unlimited."""
        return self._limit

    def set_limit(self, limit: int | None) -> None:
        """Apply a new limit (tier change, operator override) to the window as it stands.

        An unlimited gate tracks nobody, so going from unlimited to a limit starts from an
        empty window: rebuild with :meth:`from_history` instead when the history matters.
        """
        self._limit = self._check_limit(limit)

    def used(self) -> int:
        """Unique recipients holding a slot now (0 when unlimited: nobody is tracked)."""
        self._expire(self._clock())
        return len(self._expires)

    def remaining(self) -> int | None:
        """Slots free now; None when unlimited."""
        if self._limit is None:
            return None
        return max(0, self._limit - self.used())

    def reserve(self, recipients: Sequence[str]) -> Reservation:
        """Reserve a whole batch at once, in order.

        Recipients already in the window pass and are refreshed; new ones take free slots
        until none is left; the rest are deferred, with the time the earliest slot frees.
        """
        if self._limit is None:
            # Unlimited: nothing to count, and tracking millions a day would cost memory.
            return Reservation(list(recipients), [], [], None)
        now = self._clock()
        self._expire(now)
        expires_at = now + self._window
        admitted: list[str] = []
        new: list[str] = []
        deferred: list[str] = []
        for recipient in recipients:
            if recipient in self._expires:
                self._touch(recipient, expires_at)
                admitted.append(recipient)
            elif len(self._expires) < self._limit:
                self._expires[recipient] = expires_at
                admitted.append(recipient)
                new.append(recipient)
            else:
                deferred.append(recipient)
        next_slot_at = None
        if deferred:
            next_slot_at = next(iter(self._expires.values()), now)
        return Reservation(admitted, new, deferred, next_slot_at)

    def record_sent(self, recipient: str) -> None:
        """A send actually went out now: keep the recipient's slot for a full window from now.

        Reservation happens when a batch is routed; the send itself may be later.
        """
        if self._limit is None:
            return
        now = self._clock()
        self._expire(now)
        self._touch(recipient, now + self._window)

    def release(self, recipients: Iterable[str]) -> None:
        """Give back slots of :attr:`Reservation.new` recipients that were never sent to.

        Only for those: a recipient that was already in the window keeps its slot.
        """
        for recipient in recipients:
            self._expires.pop(recipient, None)

    def resync(self, holding: Iterable[str], as_of: float) -> int:
        """Free the slots of recipients who no longer hold one, by what was known at clock
        time ``as_of``: ``holding`` are the recipients of sends Meta accepted in the window
        and of sends still in flight.

        Reservations of sends Meta never accepted (failed before acceptance, requeued,
        rerouted, dead-lettered) are absent from it, so their slots free up. Only frees:
        a slot kept keeps its time; reservations made at or after ``as_of`` are kept (the
        truth was read before them). Returns how many slots were freed.
        """
        if self._limit is None:
            return 0
        self._expire(self._clock())
        keep = set(holding)
        freed = [
            recipient
            for recipient, expires in self._expires.items()
            if recipient not in keep and expires - self._window < as_of
        ]
        for recipient in freed:
            del self._expires[recipient]
        return len(freed)

    def _touch(self, recipient: str, expires_at: float) -> None:
        self._expires[recipient] = max(expires_at, self._expires.get(recipient, expires_at))
        self._expires.move_to_end(recipient)

    def _expire(self, now: float) -> None:
        expires = self._expires
        while expires:
            first = next(iter(expires.values()))
            if first > now:
                break
            expires.popitem(last=False)

    @staticmethod
    def _check_limit(limit: int | None) -> int | None:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit}")
        return limit
