"""What reached the simulated Meta: counters, limit violations and duplicates, kept as it runs."""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from dispatcher.sandbox.limits import SlidingWindowCounter


@dataclass(slots=True)
class NumberAudit:
    received: int = 0
    accepted: int = 0
    errors: Counter[int] = field(default_factory=Counter)
    window: SlidingWindowCounter = field(default_factory=lambda: SlidingWindowCounter(1.0))
    throughput_violations: int = 0
    pair_violations: int = 0
    tier_violations: int = 0


class Audit:
    """Kept per request in O(1): the audit never needs the full request log."""

    def __init__(self, max_records: int, throughput_window_s: float = 1.0) -> None:
        self._window_s = throughput_window_s
        self.numbers: dict[str, NumberAudit] = {}
        self.records: deque[tuple[float, str, str, str, int, str]] = deque(maxlen=max_records)
        self._callback_seen: set[str] = set()
        self.duplicates: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self.webhook_posts = 0
        self.webhook_statuses = 0
        self.webhook_failures = 0
        self.engagement_failures = 0
        """Messages failed with 131049 for a recipient's marketing limit (not the tier's)."""

    def number(self, phone_number_id: str) -> NumberAudit:
        audit = self.numbers.get(phone_number_id)
        if audit is None:
            audit = self.numbers[phone_number_id] = NumberAudit(
                window=SlidingWindowCounter(self._window_s)
            )
        return audit

    def received(self, phone_number_id: str, now: float) -> None:
        """A send request arrived for this number (whatever its fate)."""
        audit = self.number(phone_number_id)
        audit.received += 1
        audit.window.add(now)

    def answered(
        self,
        phone_number_id: str,
        recipient: str,
        body: bytes,
        status: int,
        now: float,
        template: str = "",
    ) -> None:
        """A send answered; ``template``: the name it asked for, when it got that far."""
        digest = hashlib.blake2b(body, digest_size=8).hexdigest()
        self.records.append((now, phone_number_id, recipient, digest, status, template))

    def accepted(self, phone_number_id: str, callback_data: str | None) -> None:
        """A send Meta took. Keyed on its callback data as a client gave it: the dispatcher's
        tag names the recipient and the attempt, so an automatic retry (a new attempt) is
        no duplicate, and the same attempt sent twice is."""
        self.number(phone_number_id).accepted += 1
        if callback_data is not None:
            if callback_data in self._callback_seen:
                self.duplicates[callback_data] += 1
            else:
                self._callback_seen.add(callback_data)

    def error(self, phone_number_id: str, code: int) -> None:
        self.number(phone_number_id).errors[code] += 1

    def report(self) -> dict[str, Any]:
        """The audit as JSON: totals, per number, and the violations tests assert on."""
        numbers = {
            pid: {
                "received": a.received,
                "accepted": a.accepted,
                "errors": {str(code): n for code, n in sorted(a.errors.items())},
                "max_received_per_s": a.window.peak,
                "throughput_violations": a.throughput_violations,
                "pair_violations": a.pair_violations,
                "tier_violations": a.tier_violations,
            }
            for pid, a in sorted(self.numbers.items())
        }
        return {
            "received": sum(a.received for a in self.numbers.values()),
            "accepted": sum(a.accepted for a in self.numbers.values()),
            "unique_callback_data": len(self._callback_seen),
            "duplicate_sends": sum(self.duplicates.values()),
            "duplicate_examples": [key for key, _ in self.duplicates.most_common(10)],
            "throughput_violations": sum(a.throughput_violations for a in self.numbers.values()),
            "pair_violations": sum(a.pair_violations for a in self.numbers.values()),
            "tier_violations": sum(a.tier_violations for a in self.numbers.values()),
            "faults_injected": dict(self.faults_injected),
            "webhook_posts": self.webhook_posts,
            "webhook_statuses": self.webhook_statuses,
            "webhook_failures": self.webhook_failures,
            "engagement_failures": self.engagement_failures,
            "numbers": numbers,
        }
