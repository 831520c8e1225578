"""Alerts to Slack and Discord incoming webhooks for what a person must act on.

``events`` (what happened), ``rules`` (state snapshots -> alerts, edge-triggered),
``dedup`` (once per key per window), ``formats`` (each service's payload), ``sender`` (the
background poster), ``watch`` (reads the coordinator's state and feeds the sender).
"""
