"""campushub's own paths in the hub's REST API (under ``/hub/api/``).

JupyterHub builds its routes from ``jupyterhub.apihandlers.default_handlers`` when it starts;
a path registered here replaces any handler another package put at the same path.
"""

from __future__ import annotations

from jupyterhub import apihandlers


def register(path: str, handler) -> None:
    """Serve ``handler`` at ``path`` (a regex such as ``r"/api/batchspawner"``), and nothing else there."""
    apihandlers.default_handlers[:] = [h for h in apihandlers.default_handlers if h[0] != path] + [(path, handler)]
