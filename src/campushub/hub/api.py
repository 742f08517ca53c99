"""The hub's HTTP side: campushub's own paths in its REST API (under ``/hub/api/``), the request log, and the
largest request body it reads."""

from __future__ import annotations

from jupyterhub import apihandlers
from jupyterhub.log import log_request
from tornado.httpserver import HTTPServer

#: the largest request body the hub reads (tornado refuses a larger one before reading it): nothing a browser,
#: a user's server or the culler sends the hub comes near it
MAX_BODY_BYTES = 2**20
SECRET = "[secret]"


def register(path: str, handler, settings: dict | None = None) -> None:
    """Serve ``handler`` at ``path`` (a regex such as ``r"/api/batchspawner"``), and nothing else there; ``settings``
    go to its ``initialize``."""
    route = (path, handler, settings) if settings else (path, handler)
    apihandlers.default_handlers[:] = [h for h in apihandlers.default_handlers if h[0] != path] + [route]


def limit_bodies(limit: int = MAX_BODY_BYTES):
    """Every HTTP server of this process (the hub's) refuses bodies over ``limit`` bytes: in the hub's own process
    only (``jupyterhub_config.py``), never in ``campushub up``'s check of the config."""
    HTTPServer.configure(None, max_body_size=limit)


def scrubbed_log(hidden: list[str]):
    """JupyterHub's request log, with the values of the ``hidden`` headers replaced by ``[secret]``: JupyterHub
    writes a failed request's headers to its log, and hides only ``Authorization`` and ``Cookie``."""

    def log(handler):
        headers = handler.request.headers
        kept = {name: headers.get_list(name) for name in hidden if name in headers}
        for name in kept:
            headers[name] = SECRET
        try:
            log_request(handler)
        finally:  # the request has been answered; its headers are put back as they were all the same
            for name, values in kept.items():
                del headers[name]
                for value in values:
                    headers.add(name, value)

    return log
