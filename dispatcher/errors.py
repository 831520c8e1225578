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


class StoreError(DispatcherError):
    """The store refused an operation; ``entity`` and ``key`` say on what."""

    def __init__(self, entity: str, key: object, problem: str) -> None:
        super().__init__(f"{entity} {key}: {problem}")
        self.entity = entity
        self.key = key
        self.problem = problem


class InvalidRecipientError(StoreError):
    """A recipient row of an ingest is invalid; ``index`` is its position in the input."""

    def __init__(self, index: int, problem: str) -> None:
        super().__init__("recipient", f"#{index}", problem)
        self.index = index


class CampaignFinishedError(StoreError):
    """The campaign reached a final ``status`` (e.g. it completed while an append streamed
    in): it takes no more recipients, and nothing of the refused input was recorded."""

    def __init__(self, campaign_id: object, status: str) -> None:
        super().__init__("campaign", campaign_id, f"is {status}: cannot add recipients")
        self.status = status


class QueueError(DispatcherError):
    """The durable queue refused an operation; ``queue`` names it."""

    def __init__(self, queue: str, problem: str) -> None:
        super().__init__(f"queue {queue}: {problem}")
        self.queue = queue
        self.problem = problem


class UploadLimitError(DispatcherError):
    """A bulk upload passed one of its limits: ``limit`` names the setting (e.g.
    ``max_upload_rows``), ``maximum`` its value. Refused whole: nothing of it is recorded."""

    def __init__(self, limit: str, maximum: float, problem: str) -> None:
        super().__init__(f"{problem} ({limit} = {maximum:g})")
        self.limit = limit
        self.maximum = maximum
        self.problem = problem


class InstanceLimitError(StoreError):
    """Registering one more number would pass ``maximum`` (the ``max_instances`` setting)."""

    def __init__(self, phone_number_id: str, maximum: int) -> None:
        super().__init__(
            "instance", phone_number_id, f"{maximum} numbers are registered: the most allowed"
        )
        self.maximum = maximum
