"""The container engine: Podman, root's or an account's rootless one."""

from __future__ import annotations

import os
import subprocess

from .accounts import account_environment, as_account

LAB_IMAGE = "localhost/campushub-lab-slim:latest"


def podman(*args, check=True, account: str | None = None) -> str:
    """``podman``: root's, or ``account``'s rootless one."""
    return subprocess.run(
        [*as_account(account), "podman", *args],
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, **account_environment(account)},
    ).stdout.strip()


def remove_volumes(prefix: str, account: str | None = None):
    """Remove the engine's volumes whose names start with ``prefix`` (never touch other runs' volumes)."""
    for volume in podman("volume", "ls", "--format", "{{.Name}}", account=account).split():
        if volume.startswith(prefix):
            podman("volume", "rm", "-f", volume, check=False, account=account)
