"""The chaos suite: faults on real processes during a real campaign (``python -m tests.chaos``)."""
