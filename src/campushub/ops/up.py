"""``campushub up``: run JupyterHub in the foreground, say when it is ready, stop it cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from traitlets.config import Config

from ..backends import used
from ..hub import CONFIG_FILE
from ..hub.configurer import configure
from ..sitefile.errors import StartError, raise_problems
from ..sitefile.read import load_site, preflight
from . import database, health, startup, state

READY_TIMEOUT = 180  # s; a cold start on a loaded 2-core machine takes ~10
STOP_TIMEOUT = 30
DATABASE_WAIT = 60  # s: a database container's first start (initdb) takes a few


def run_hub(path: Path, as_user: str | None = None) -> int:
    """Start the hub for the site file at ``path``; return the exit code for the command.

    Everything the hub's config will do is done once here first, and the container
    engine is asked about sockets and images, so a bad site file, a missing proxy,
    an unreadable secret or a missing image stops us before anything starts.
    Raises :class:`~campushub.sitefile.errors.Problems` for those.
    """
    site = load_site(path)
    raise_problems(startup.problems(site))
    if as_user and site.guarded():
        raise StartError(
            [
                f"--as-user: this hub listens below port 1024 so that no other account can take its ports (users' code"
                f" runs on its host behind single sign-on, profiles.{site.guarded()[0]}); run it as root"
            ]
        )
    if as_user:
        state.become(as_user, site.hub.state_dir)
    configure(Config(), site, extra=False)
    # a database server started beside the hub (compose.postgres.yaml) may take a few seconds to take logins
    raise_problems(preflight(site) + database.schema_problems(site, wait=DATABASE_WAIT))
    state_dir = site.hub.state_dir
    env = {**os.environ, "CAMPUSHUB_CONFIG": str(path.absolute())}
    print(f"campushub: starting JupyterHub for {path} (state in {state_dir})", file=sys.stderr, flush=True)
    since = time.time()
    hub = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)],
        env=env,
        cwd=state_dir,
        start_new_session=True,
    )
    state.record_hub(state_dir, hub.pid)
    stopping: list[int] = []

    def stop(signum, _frame):
        if not stopping:
            print("campushub: stopping the hub", file=sys.stderr, flush=True)
            hub.send_signal(signal.SIGTERM)
        stopping.append(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        return _supervise(hub, site, stopping)
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait()
        startup.clean_up(state_dir, since)


def kill(hub: subprocess.Popen, keeps_servers: bool):
    """The hub did not stop in time: kill it, and end what it would have stopped itself (the culler; and users'
    servers, unless the site's servers outlive the hub by design)."""
    print("campushub: the hub did not stop in time; killing it and what it started", file=sys.stderr, flush=True)
    try:
        started = psutil.Process(hub.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    hub.kill()
    hub.wait()
    ending = [p for p in started if not keeps_servers or _is_culler(p)]
    for process in ending:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    for process in psutil.wait_procs(ending, timeout=5)[1]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def _is_culler(process: psutil.Process) -> bool:
    try:
        return "campushub.hub.culler" in process.cmdline()
    except psutil.NoSuchProcess:
        return False


def _supervise(hub: subprocess.Popen, site, stopping: list) -> int:
    bind_url = site.hub.bind_url
    url = health.health_url(bind_url)
    # the hub's own port first: asked before the hub listens and its route exists, its proxy logs a 404 and a
    # refused connection in red at every start
    own = health.health_url(f"http://{site.hub.hub_ip}:{site.hub.hub_port}")
    deadline = time.monotonic() + READY_TIMEOUT
    ready = False
    while hub.poll() is None:
        if stopping:
            try:
                hub.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                kill(hub, keeps_servers=any(backend.persistent for backend in used(site)))
            return 0
        if not ready:
            if health.answers(own) and health.answers(url):
                ready = True
                print(f"campushub: ready at {bind_url}", flush=True)
            elif time.monotonic() > deadline:
                print(f"campushub: the hub did not answer {url} within {READY_TIMEOUT} s; stopping it", file=sys.stderr)
                hub.terminate()
                hub.wait(STOP_TIMEOUT)
                return 1
        time.sleep(0.25)
    if stopping:
        return 0
    when = "while running" if ready else "before it was ready"
    print(f"campushub: the hub exited {when} (code {hub.returncode}); see the messages above", file=sys.stderr)
    return hub.returncode or 1
