"""Fixtures: real hubs started with ``campushub up``, real proxies, servers and kernels."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import requests
import yaml

from campushub.testing import (  # noqa: F401 (used by tests)
    CAMPUSHUB,
    PROXY_SECRET,
    SECRET_ENV,
    SECRET_HEADER,
    Hub,
    HubClient,
    ensure_account,
    ensure_user,
    free_port,
)

IN_CI = os.environ.get("CI") == "true"
PODMAN_COMPOSE = str(Path(sys.executable).parent / "podman-compose")
LAB_IMAGE = "localhost/campushub-lab-slim:latest"
REPO = Path(__file__).parent.parent
EXTERNAL = "https://sso.example.edu"  # redirect targets in tests: never contacted


def require_root(what: str):
    """Skip ``what`` without root on a developer's machine; in CI (which runs as root) fail instead."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail(f"CI runs as root, and {what} needs it")
        pytest.skip(f"{what} needs root")


def base_site(**sections) -> dict:
    """A remote_user site (with the front door's secret) whose one open local profile runs servers
    as the users' own accounts, and no culler; ``sections`` replace parts."""
    site = {
        "auth": {
            "type": "remote_user",
            "required_groups": ["SAM-SSLVPNSAMUsers"],
            "missing_user_redirect": f"{EXTERNAL}/no-user",
            "missing_group_redirect": f"{EXTERNAL}/no-group",
            "admin_groups": ["crc-admins"],
            "proxy_secret": {"env": SECRET_ENV},
        },
        "profiles": [{"slug": "local", "name": "On the hub host", "backend": "local", "system_users": True,
                      "default": True}],
        "culler": {"enabled": False},
    }
    site.update(sections)
    return site


def podman(*args, check=True) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check).stdout.strip()


class Compose(HubClient):
    """A compose deployment of this repository's compose.yaml under its own project name."""

    def __init__(self, folder: Path, site: dict, project: str, socket: str, files=("compose.yaml",),
                 env: dict | None = None):
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "campushub.yaml").write_text(yaml.safe_dump(site))
        self.project = project
        self.files = [arg for name in files for arg in ("-f", str(REPO / name))]
        self.env = {**os.environ, "COMPOSE_PROJECT_NAME": project, "CAMPUSHUB_PORT": str(self.port),
                    "CAMPUSHUB_SITE_FILE": str(folder / "campushub.yaml"), "LAB_IMAGE": LAB_IMAGE,
                    "CONTAINER_SOCKET": socket.removeprefix("unix://"), **(env or {})}

    def compose(self, *args):
        result = subprocess.run([PODMAN_COMPOSE, *self.files, *args], env=self.env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    @property
    def hub_container(self) -> str:
        return f"{self.project}_hub_1"

    def wait_healthy(self, timeout: float = 180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/hub/health", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the hub did not answer within {timeout} s:\n{self.tail()}")

    def up(self, *services):
        self.compose("up", "-d", *(services or ["hub"]))
        self.wait_healthy()

    def tail(self) -> str:
        return podman("logs", "--tail", "60", self.hub_container, check=False)


@pytest.fixture(scope="session")
def engine():
    """Podman's Docker API socket with the firewall for users' containers, and the hub, slim lab and
    front door images built from Debian's mirror."""
    require_root("a rootful Podman")
    socket = subprocess.run([str(REPO / "scripts" / "engine"), "start", "podman"], capture_output=True, text=True,
                            check=True).stdout.strip()
    # as docs/containers.md sets it up: users' containers cannot reach the cluster's services
    subprocess.run([str(REPO / "scripts" / "firewall"), "apply", "10.88.0.0/16", "10.89.77.0/24"], check=True)
    env = {**os.environ, "EXTRA_CA_CERTS_DIR": "/usr/local/share/ca-certificates"}
    subprocess.run([str(REPO / "scripts" / "images")], check=True, env=env)
    return socket


def kill_processes_of(user: str):
    """SIGKILL the processes running as ``user`` (a test account), one by one by their PID."""
    uid = pwd.getpwnam(user).pw_uid
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                os.kill(int(pid), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            continue


@pytest.fixture(scope="session")
def accounts():
    """``accounts(*names)``: fresh system accounts (with homes) for users whose servers run as
    themselves; removed, with whatever they left running, at the end of the session."""
    require_root("system accounts for users")
    made = []

    def make(*names: str) -> tuple[str, ...]:
        for name in names:
            if name not in made:
                subprocess.run(["userdel", "--remove", name], capture_output=True)
                ensure_user(name)
                made.append(name)
        return names

    yield make
    for name in made:
        kill_processes_of(name)
        subprocess.run(["userdel", "--remove", name], capture_output=True)


@pytest.fixture(scope="session")
def hub_root(request):
    """A folder for hubs' site files, state and logs that the hub account can reach (pytest's tmp is 0700).

    Kept, and named, when a test failed: the hubs' logs are there.
    """
    ensure_account()
    root = Path(tempfile.mkdtemp(prefix="campushub-tests-"))
    root.chmod(0o755)
    yield root
    if request.session.testsfailed:
        print(f"\nhub logs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def hub_factory(hub_root, request):
    """Start hubs for one test; every one is stopped afterwards."""
    hubs = []
    folder = Path(tempfile.mkdtemp(prefix=request.node.name[:40] + "-", dir=hub_root))
    folder.chmod(0o755)

    def make(site: dict, name: str = "hub", env: dict | None = None, start: bool = True, as_root=None) -> Hub:
        hub = Hub(folder / name, site, env, as_root)
        hubs.append(hub)
        return hub.start() if start else hub

    yield make
    for hub in hubs:
        hub.stop()


@pytest.fixture(scope="module")
def module_hub(hub_root, request):
    """One hub shared by a module's tests; the module sets ``SITE``."""
    hub = Hub(hub_root / request.module.__name__.rsplit(".", 1)[-1], request.module.SITE)
    hub.start()
    yield hub
    hub.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI nothing may be skipped silently: a skip there is a failure."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI: {report.longrepr}"
