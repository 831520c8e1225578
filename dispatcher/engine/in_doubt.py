"""When an in-doubt send stops waiting for its webhook: a bound tied to webhook progress.

A send is in doubt when its outcome is unknown: the request left but the answer timed out,
or its sender died (or was replaced) after marking it ``sending``. If Meta took it, a status
webhook says so (matched by wamid or our callback data) and settles it. Only when none came
is the operator's policy applied (``InDoubtPolicy``), and only once the webhooks have had
their chance: the statuses applied so far reach past the send's time plus a margin (Meta
sends statuses in roughly the order it took messages, and retries a failed delivery), and at
least ``min_wait_s`` passed. With no webhook traffic at all (the last send of the day, or
webhooks broken), ``max_wait_s`` ends the wait. Never a fixed few-second timer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InDoubtBound:
    min_wait_s: float = 30.0
    webhook_margin_s: float = 20.0
    max_wait_s: float = 300.0

    def due_before(self, now_s: float, webhook_watermark_s: float | None) -> float:
        """Wall time (seconds since the epoch): sends in doubt since before it are due.

        ``webhook_watermark_s``: the latest event time (Meta's clock) among the statuses
        applied so far, None when none was applied since the coordinator started.
        """
        forced = now_s - self.max_wait_s
        if webhook_watermark_s is None:
            return forced
        evidenced = min(now_s - self.min_wait_s, webhook_watermark_s - self.webhook_margin_s)
        return max(forced, evidenced)
