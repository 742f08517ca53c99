"""Fixtures: real hubs started with ``campushub up``, real proxies, servers and kernels."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from campushub.testing import CAMPUSHUB, Hub, ensure_account, free_port  # noqa: F401 (used by tests)

IN_CI = os.environ.get("CI") == "true"
EXTERNAL = "https://sso.example.edu"  # redirect targets in tests: never contacted


def require_root(what: str):
    """Skip ``what`` without root on a developer's machine; in CI (which runs as root) fail instead."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail(f"CI runs as root, and {what} needs it")
        pytest.skip(f"{what} needs root")


def base_site(**sections) -> dict:
    """A remote_user site with one open local profile and no culler; ``sections`` replace parts."""
    site = {
        "auth": {
            "type": "remote_user",
            "required_groups": ["SAM-SSLVPNSAMUsers"],
            "missing_user_redirect": f"{EXTERNAL}/no-user",
            "missing_group_redirect": f"{EXTERNAL}/no-group",
            "admin_groups": ["crc-admins"],
        },
        "profiles": [{"slug": "local", "name": "On the hub host", "backend": "local", "default": True}],
        "culler": {"enabled": False},
    }
    site.update(sections)
    return site


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

    def make(site: dict, name: str = "hub", env: dict | None = None, start: bool = True, as_root=False) -> Hub:
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
