"""What ``campushub up`` makes sure of before it starts anything, and cleans up after the hub exits."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from ..sitefile.model import Site
from . import database, ports, processes, state


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
    if not processes.runs(pid, "configurable-http-proxy"):
        return
    print(f"campushub: stopping the proxy the hub left running (pid {pid})", file=sys.stderr, flush=True)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while processes.runs(pid, "configurable-http-proxy") and time.monotonic() < deadline:
        time.sleep(0.1)
    if processes.runs(pid, "configurable-http-proxy"):
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
