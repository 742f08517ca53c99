"""Metrics: a real Prometheus (Debian's) scrapes a real hub's /hub/metrics with the token the site file
declares, and campushub's series move as servers start, fail and end."""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from harness import EMBEDDED, IN_CI, REPO, free_port

TOKEN_ENV = "CAMPUSHUB_TEST_METRICS_TOKEN"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
SITE = {
    **EMBEDDED,
    "profiles": [
        EMBEDDED["profiles"][0],
        # a server that cannot start: its Python finds no standard library and exits at once
        {
            "slug": "broken",
            "name": "Broken",
            "backend": "local",
            "fast_start": False,
            "environment": {"PYTHONHOME": "/nonexistent"},
        },
    ],
    "spawner": {"poll_interval": 1},  # the hub notices a server that ended within a second
    "metrics": {"enabled": True, "token": {"env": TOKEN_ENV}},
}


class Prometheus:
    """Debian's Prometheus with its own config and data folder, scraping ``target`` every second."""

    def __init__(self, folder: Path, target: str, token: str):
        if not os.path.exists(PROMETHEUS):
            if IN_CI:
                pytest.fail("prometheus is not installed (scripts/test installs Debian's)")
            pytest.skip("prometheus is not installed: apt-get install prometheus")
        folder.mkdir()
        (folder / "token").write_text(token)
        (folder / "token").chmod(0o600)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "campushub",
                    "metrics_path": "/hub/metrics",
                    "authorization": {"type": "Bearer", "credentials_file": str(folder / "token")},
                    "static_configs": [{"targets": [target]}],
                }
            ],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = folder / "prometheus.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait(lambda: requests.get(f"{self.url}/-/ready", timeout=5).status_code == 200, "ready")

    def wait(self, condition, what, timeout: float = 60):
        """Until ``condition()``; ``what`` (text, or a function that says it) names it when it never comes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if condition():
                    return
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                what = what() if callable(what) else what
                raise AssertionError(f"Prometheus: not {what}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def query(self, expr: str) -> dict:
        """{labels as a sorted tuple: value} of an instant query, through Prometheus's HTTP API."""
        r = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "success", r.text
        found = {}
        for item in r.json()["data"]["result"]:
            labels = tuple(sorted((k, v) for k, v in item["metric"].items() if k not in ("instance", "job")))
            found[labels] = float(item["value"][1])
        return found

    def value(self, expr: str) -> float | None:
        found = self.query(expr)
        assert len(found) <= 1, found
        return next(iter(found.values()), None)

    def wait_value(self, expr: str, expected: float, timeout: float = 30):
        self.wait(
            lambda: self.value(expr) == expected, lambda: f"{expr} == {expected} (now {self.value(expr)})", timeout
        )

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def server_processes(home: Path) -> list[int]:
    """PIDs of the processes working in ``home`` (a local server, its kernels)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd") == str(home):
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_prometheus_scrapes_the_hub_with_the_declared_token(hub_factory, hub_root):
    token = secrets.token_hex(24)
    hub = hub_factory(SITE, env={TOKEN_ENV: token})
    prometheus = Prometheus(Path(hub.folder) / "prometheus", hub.url.removeprefix("http://"), token)
    try:
        # only the metrics service's token reads /hub/metrics: not anonymous requests, not a user's token
        s, _ = hub.password_login("alice", (hub.state / "shared_password").read_text().strip())
        user_token = hub.token(s, "alice")
        assert requests.get(f"{hub.url}/hub/metrics", timeout=10).status_code == 403
        mine = requests.get(f"{hub.url}/hub/metrics", headers={"Authorization": f"token {user_token}"}, timeout=10)
        assert mine.status_code == 403, mine.text[:300]
        assert "read:metrics" in mine.text
        theirs = requests.get(f"{hub.url}/hub/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert theirs.status_code == 200 and "campushub_server_start_seconds" in theirs.text

        # Prometheus scrapes it (a 403 would make `up` 0) and has the series, at zero, before any start
        prometheus.wait_value('up{job="campushub"}', 1)
        started = 'campushub_server_start_seconds_count{profile="local",backend="local"}'
        active = 'campushub_active_users{profile="local",backend="local"}'
        prometheus.wait_value(started, 0)
        assert prometheus.value(active) == 0
        assert prometheus.value('campushub_active_users{profile="broken"}') == 0
        assert prometheus.value("jupyterhub_running_servers") == 0  # and JupyterHub's own

        # a start moves the start duration's count, and the user is active on that profile
        hub.start_server(s, "alice")
        prometheus.wait_value(started, 1)
        assert 0 < prometheus.value(started.replace("_count", "_sum")) < 60
        prometheus.wait_value(active, 1)
        prometheus.wait_value("jupyterhub_running_servers", 1)

        # a server that ends by itself: a session ended, and the user is no longer active
        home = hub.state / "home" / "alice"
        pids = server_processes(home)
        assert pids, f"no process works in {home}"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        ended = 'campushub_sessions_ended_total{profile="local",backend="local",reason="exited"}'
        prometheus.wait_value(ended, 1)
        prometheus.wait_value(active, 0)

        # a start whose server ends before it listens fails at once, and is counted by why, not as a start
        r = hub.api(s, "POST", "users/alice/server", json={"profile": "broken"}, timeout=60)
        assert r.status_code == 500 and "Your server stopped while it started" in r.text, r.text
        reason = 'reason="stopped-while-starting"'
        failed = f'campushub_server_start_failures_total{{profile="broken",backend="local",{reason}}}'
        prometheus.wait_value(failed, 1)
        assert prometheus.value('campushub_server_start_seconds_count{profile="broken"}') == 0
        assert prometheus.value(started) == 1

        # every series the dashboard queries exists in Prometheus now (the Slurm queue's needs Slurm)
        names = set(requests.get(f"{prometheus.url}/api/v1/label/__name__/values", timeout=10).json()["data"])
        dashboard = json.loads((REPO / "dashboards" / "campushub.json").read_text())
        exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
        used = set(re.findall(r"\b((?:campushub|jupyterhub)_[a-z_]+)\{", exprs)) - {
            "campushub_slurm_queue_wait_seconds_bucket"
        }
        assert used - names == set()
    finally:
        prometheus.stop()
