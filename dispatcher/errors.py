"""The dispatcher's exception hierarchy: one root, a few subclasses that mean something."""

from __future__ import annotations


class DispatcherError(Exception):
    """Root of every error the dispatcher raises on purpose."""


class ConfigError(DispatcherError):
    """A setting is missing or invalid; ``setting`` names it (never its value)."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class ServiceError(DispatcherError):
    """A backing service (Redis, Postgres, Ray) cannot be reached or started."""

    def __init__(self, service: str, problem: str) -> None:
        super().__init__(f"{service}: {problem}")
        self.service = service
        self.problem = problem
