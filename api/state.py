"""What every handler reaches: the store, the queues, the coordinator, the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from dispatcher.config import Settings
from dispatcher.queue import Queues
from dispatcher.queue.intake import WebhookIntake
from dispatcher.store import Store
from dispatcher.uploads import UploadLimits


@dataclass(slots=True)
class AppState:
    settings: Settings
    store: Store
    queues: Queues
    coordinator: Any
    """The coordinator actor's handle (``await coordinator.method.remote(...)``)."""
    intake: WebhookIntake
    """Meta's webhook payloads, written to the webhooks stream in groups."""

    @property
    def upload_limits(self) -> UploadLimits:
        return UploadLimits(
            max_rows=self.settings.max_upload_rows,
            max_bytes=self.settings.max_upload_bytes,
            max_s=self.settings.max_upload_s,
        )


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.dispatcher
    return state
