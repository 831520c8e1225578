"""Read rates and how sure we are of them: Wilson score intervals, two-proportion z-tests.

Read rate = read / sent: of the messages Meta accepted, the share the recipient opened
(a ``read`` status; a read message counts as delivered too). Pure functions, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Proportion:
    """``successes`` out of ``trials`` (reads out of sends)."""

    successes: int
    trials: int

    @property
    def rate(self) -> float | None:
        """None before any trial: no rate to show, rather than a misleading 0."""
        return self.successes / self.trials if self.trials else None


def wilson(p: Proportion, confidence: float) -> tuple[float, float]:
    """The two-sided Wilson score interval at ``confidence``: unlike the normal ("Wald")
    interval it stays within [0, 1] and is honest for small counts and rates near 0 or 1.
    (0, 1) before any trial."""
    n = p.trials
    if n == 0:
        return 0.0, 1.0
    z = _NORMAL.inv_cdf(1 - (1 - confidence) / 2)
    phat = min(p.successes, n) / n
    denominator = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    # At 0 and 1 the bound is exactly the rate; floats would land a hair inside it.
    low = 0.0 if phat == 0 else max(0.0, centre - half)
    high = 1.0 if phat == 1 else min(1.0, centre + half)
    return low, high


def z_test(a: Proportion, b: Proportion) -> tuple[float, float]:
    """(z, p): the pooled two-proportion z statistic of ``a`` minus ``b`` and its one-sided
    p-value (the chance of a z this large if ``a``'s rate were no better than ``b``'s)."""
    if a.trials == 0 or b.trials == 0:
        return 0.0, 1.0
    ra, rb = min(a.successes, a.trials) / a.trials, min(b.successes, b.trials) / b.trials
    pooled = (min(a.successes, a.trials) + min(b.successes, b.trials)) / (a.trials + b.trials)
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.trials + 1 / b.trials))
    if se == 0:  # both all read or none read: no difference to see
        return 0.0, 1.0
    z = (ra - rb) / se
    return z, 1 - _NORMAL.cdf(z)
