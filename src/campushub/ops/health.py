"""Whether the hub answers: its ``/hub/health`` address, one request, and waiting for it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit


def health_url(bind_url: str) -> str:
    """``/hub/health`` through the proxy, on loopback when the hub listens on every address."""
    parts = urlsplit(bind_url)
    host = parts.hostname or ""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    path = parts.path.rstrip("/") + "/hub/health"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def get(url: str, headers: dict | None = None, timeout: float = 5) -> str | None:
    """The body of ``url``'s answer when it is a 200, else None (no answer, or another status)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
            return response.read().decode() if response.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def answers(url: str, timeout: float = 2) -> bool:
    """Whether ``url`` answers 200 within ``timeout`` seconds."""
    return get(url, timeout=timeout) is not None


def wait_healthy(url: str, wait: float = 0) -> str | None:
    """Poll ``url`` (``/hub/health``) for up to ``wait`` seconds: the hub's JupyterHub version once it answers."""
    deadline = time.monotonic() + wait
    while not answers(url):
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.5)
    about = get(url.removesuffix("/health") + "/api/") or ""
    try:
        return f"JupyterHub {json.loads(about)['version']}"
    except (TypeError, ValueError, KeyError):
        return "JupyterHub"
