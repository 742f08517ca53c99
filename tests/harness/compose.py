"""Compose deployments of this repository's compose files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from .accounts import account_environment, as_account
from .engines import LAB_IMAGE, podman
from .env import REPO
from .hubs import HubClient
from .network import free_port


class Compose(HubClient):
    """A compose deployment of this repository's compose.yaml under its own project name, driven as the docs
    say: settings in a ``.env`` file, ``scripts/compose`` (which checks before ``up`` and waits for health).

    ``account``: the unprivileged account whose rootless Podman runs it (``socket`` is then that account's).
    """

    def __init__(
        self,
        folder: Path,
        site: dict,
        project: str,
        socket: str,
        files=("compose.yaml",),
        env: dict | None = None,
        account: str | None = None,
    ):
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}", site)
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "campushub.yaml").write_text(yaml.safe_dump(site))
        self.project = project
        self.account = account
        self.files = [arg for name in files for arg in ("-f", str(REPO / name))]
        self.env_file = folder / ".env"
        variables = {
            "CAMPUSHUB_PORT": str(self.port),
            "CAMPUSHUB_SITE_FILE": str(folder / "campushub.yaml"),
            "LAB_IMAGE": LAB_IMAGE,
            "CONTAINER_SOCKET": socket.removeprefix("unix://"),
            **(env or {}),
        }
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in variables.items()))
        self.env = {**os.environ, "COMPOSE_PROJECT_NAME": project, **account_environment(account)}

    def run(self, *args) -> subprocess.CompletedProcess:
        """``scripts/compose`` with this deployment's files and ``.env`` (as ``account``, if any)."""
        command = [str(REPO / "scripts" / "compose"), "--env-file", str(self.env_file), *self.files, *args]
        return subprocess.run(as_account(self.account) + command, env=self.env, capture_output=True, text=True)

    def compose(self, *args):
        result = self.run(*args)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result

    def podman_compose(self, *args) -> subprocess.CompletedProcess:
        """podman-compose itself, as an admin who skips scripts/compose runs it: no check before ``up``."""
        command = [str(Path(sys.executable).parent / "podman-compose"), "--env-file", str(self.env_file), *self.files]
        return subprocess.run(
            as_account(self.account) + command + list(args), env=self.env, capture_output=True, text=True
        )

    def podman(self, *args, check=True) -> str:
        """``podman`` of the engine this deployment runs on."""
        return podman(*args, check=check, account=self.account)

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
        """``scripts/compose up -d``, as the docs say; what it printed is kept in ``started``."""
        self.started = self.compose("up", "-d", *(services or ["hub"]))
        self.wait_healthy()

    def logs(self, *args) -> str:
        """The hub container's output: ``podman logs`` gives its stderr on its own stderr."""
        command = [*as_account(self.account), "podman", "logs", *args, self.hub_container]
        env = {**os.environ, **account_environment(self.account)}
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env).stdout

    def tail(self) -> str:
        return self.logs("--tail", "60")
