"""One small HTTP server per service: Prometheus metrics and health checks.

``/metrics`` serves the service's registry; ``/livez`` and ``/readyz`` answer
200 while the service's own check says it is live or ready, and 503 with the
reason otherwise, so a Kubernetes probe or an operator's ``curl`` reads the
same truth. A service may add ``/status``: a JSON account of how it is
working, such as what it answers with while degraded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

logger = logging.getLogger(__name__)

# A check returns None when all is well, or what is wrong, for a person.
HealthCheck = Callable[[], str | None]
# A status report: JSON text, served whatever it says.
StatusReport = Callable[[], str]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)


class ServiceEndpoint:
    """The metrics and health endpoint of one service, served from a thread."""

    def __init__(
        self,
        port: int,
        registry: CollectorRegistry,
        *,
        live: HealthCheck,
        ready: HealthCheck,
        status: StatusReport | None = None,
        host: str = "0.0.0.0",
    ) -> None:
        self._metrics = make_wsgi_app(registry)
        self._checks = {"/livez": live, "/readyz": ready}
        self._status = status
        self._server = make_server(
            host, port, self._app, _ThreadingServer, handler_class=_QuietHandler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="service-endpoint", daemon=True
        )

    def start(self) -> ServiceEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/status" and self._status is not None:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [self._status().encode() + b"\n"]
        check = self._checks.get(path)
        if check is None:
            return self._metrics(environ, start_response)  # type: ignore[no-any-return]
        problem = check()
        status = "200 OK" if problem is None else "503 Service Unavailable"
        body = ("ok" if problem is None else problem).encode() + b"\n"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [body]
