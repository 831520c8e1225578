"""A/B testing of a campaign's templates: weighted variants, their read rates, a winner.

The pure parts live here (settings, assignment, statistics, the winner's decision), with no
I/O; the store keeps variants and their counters (``store/variants.py``, migration 0016),
the coordinator asks for a decision (``engine/winner_watch.py``).
"""
