"""The API in a background thread of the current process (the demo, the tests)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from dispatcher.errors import ServiceError
from dispatcher.tls import ServerTls


class ApiServer:
    """uvicorn serving ``app`` on ``host:port`` in a daemon thread, over HTTPS when given a
    certificate and key; start() waits until up."""

    def __init__(
        self, app: Any, port: int, host: str = "127.0.0.1", tls: ServerTls | None = None
    ) -> None:
        self.port = port
        self.url = f"{'https' if tls else 'http'}://{host}:{port}"
        # access_log=False: uvicorn's line carries the query string; api.access_log logs instead.
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ssl_certfile=tls.certfile if tls else None,
            ssl_keyfile=tls.keyfile if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="api")

    def start(self, timeout_s: float = 30.0) -> ApiServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise ServiceError("api", f"did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(15)
