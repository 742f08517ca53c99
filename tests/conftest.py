"""Fixtures: real hubs started with ``campushub up``, accounts, and the container engine.

``tests/fast`` needs no service and runs in seconds; everything in ``tests/services`` starts
real processes and carries the ``services`` marker (``scripts/test`` runs the fast layer first).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness import (
    IN_CI,
    REPO,
    Hub,
    ensure_account,
    ensure_user,
    free_port,
    kill_processes_of,
    require_root,
    scripts_slurm,
)

SERVICES = Path(__file__).parent / "services"


def pytest_collection_modifyitems(items):
    for item in items:
        if SERVICES in item.path.parents:
            item.add_marker(pytest.mark.services)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI nothing may be skipped or expected to fail silently: either is a failure there."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        why = "expected to fail" if hasattr(report, "wasxfail") else "skipped"
        report.outcome = "failed"
        report.longrepr = f"{why} in CI: {report.longrepr or report.wasxfail}"


@pytest.fixture(scope="session")
def engine():
    """Podman's Docker API socket with the firewall for users' containers, and the hub, slim lab, front
    door and PostgreSQL images built from Debian's mirror."""
    require_root("a rootful Podman")
    socket = subprocess.run(
        [str(REPO / "scripts" / "engine"), "start", "podman"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # as docs/containers.md sets it up: users' containers cannot reach the cluster's services
    subprocess.run([str(REPO / "scripts" / "firewall"), "apply", "10.88.0.0/16", "10.89.77.0/24"], check=True)
    env = {**os.environ, "EXTRA_CA_CERTS_DIR": "/usr/local/share/ca-certificates"}
    subprocess.run([str(REPO / "scripts" / "images")], check=True, env=env)
    return socket


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


class Postgres:
    """A PostgreSQL server started by scripts/postgres: fresh databases for the tests' hubs."""

    def __init__(self, folder: Path, url: str):
        self.folder = folder
        self.url = url
        self.password = (folder / "password").read_text().strip()
        self.count = 0

    def database(self) -> str:
        """A new, empty database owned by the ``campushub`` role: its URL (without the password)."""
        self.count += 1
        name = f"hub_{os.getpid()}_{self.count}"
        port = self.url.rsplit(":", 1)[1].split("/")[0]
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "psql",
                "-h",
                str(self.folder / "data"),
                "-p",
                port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qc",
                f"CREATE DATABASE {name} OWNER campushub",
            ],
            check=True,
        )
        return self.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def postgres(hub_root):
    """A real PostgreSQL from Debian (scripts/postgres) on a free loopback port, stopped at the end."""
    require_root("PostgreSQL run as the postgres account")
    folder = hub_root / "postgres"
    script = str(REPO / "scripts" / "postgres")
    url = subprocess.run(
        [script, "start", str(folder), str(free_port())], capture_output=True, text=True, check=True
    ).stdout.strip()
    yield Postgres(folder, url)
    subprocess.run([script, "stop", str(folder)], check=True)


class HubPool:
    """Starts hubs in folders of their own under one root, and stops whatever is still running."""

    def __init__(self, root: Path):
        self.root = root
        self.hubs: list[Hub] = []

    def start(
        self, site: dict, name: str = "hub", env: dict | None = None, as_root: bool | None = None, start: bool = True
    ) -> Hub:
        folder = Path(tempfile.mkdtemp(prefix=name.replace("/", "-")[:40] + "-", dir=self.root))
        folder.chmod(0o755)
        hub = Hub(folder, site, env, as_root)
        self.hubs.append(hub)
        return hub.start() if start else hub

    def stop_all(self):
        for hub in self.hubs:
            hub.stop()


@pytest.fixture(scope="session")
def hubs(hub_root):
    """The one factory for hubs: ``hubs.start(site, name)``; module fixtures stop theirs when done."""
    pool = HubPool(hub_root)
    yield pool
    pool.stop_all()


@pytest.fixture
def hub_factory(hubs, request):
    """Hubs for one test, stopped when it ends: ``hub_factory(site)``."""
    started = []

    def make(site: dict, **kwargs) -> Hub:
        hub = hubs.start(site, kwargs.pop("name", request.node.name), **kwargs)
        started.append(hub)
        return hub

    yield make
    for hub in started:
        hub.stop()


@pytest.fixture
def tmpfs(hub_root):
    """``tmpfs(size)``: a new tmpfs of ``size`` (``4m``) under the run's folder, unmounted after the test."""
    require_root("mounting a tmpfs")
    mounts = []

    def mount(size: str) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="small-disk-", dir=hub_root))
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)], check=True)
        mounts.append(folder)
        return folder

    yield mount
    for folder in mounts:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture(scope="module")
def slurm_cluster():
    """The single-node test cluster (scripts/slurm start, which mends a controller an earlier module stopped):
    its SLURM_CONF."""
    require_root("running slurmctld and slurmd")
    return scripts_slurm("start").removeprefix("SLURM_CONF=")
