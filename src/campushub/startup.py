"""What ``campushub up`` makes sure of before it starts anything, and cleans up after the hub exits."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from . import database, ports, state
from .site import Site


def problems(site: Site) -> list[str]:
    """The state directory cannot be written, a port is taken, or this site's hub already runs."""
    state_dir = site.hub.state_dir
    pid = state.running_hub(state_dir)
    if pid:
        return [f"hub.state_dir: a hub for {state_dir} already runs (pid {pid}); stop it first"]
    return ports.problems(site) or state.problems(state_dir)


def check_problems(site: Site) -> list[str]:
    """For ``campushub check``: ports other programs hold (not this site's own running hub), and a database that
    cannot be read or was written by an older JupyterHub."""
    taken = [] if state.running_hub(site.hub.state_dir) else ports.problems(site)
    return taken + database.schema_problems(site)


def record(state_dir: Path, pid: int):
    """Note the hub's process id in the state directory, for ``backup``, ``restore``, ``upgrade`` and ``doctor``."""
    path = state_dir / state.HUB_PID_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{pid}\n")


def clean_up(state_dir: Path, since: float):
    """After the hub exited: forget its process id, and stop the proxy it started if it left it running.

    Only a proxy whose pid file this hub wrote (at or after ``since``, a ``time.time()``) is stopped.
    """
    (state_dir / state.HUB_PID_FILE).unlink(missing_ok=True)
    pid_file = state_dir / "proxy.pid"
    try:
        if pid_file.stat().st_mtime < since:
            return
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    if not _is_proxy(pid):
        return
    print(f"campushub: stopping the proxy the hub left running (pid {pid})", file=sys.stderr, flush=True)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while _is_proxy(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _is_proxy(pid):
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def _is_proxy(pid: int) -> bool:
    """Whether ``pid`` is a running configurable-http-proxy (a zombie has no command line)."""
    try:
        return b"configurable-http-proxy" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
