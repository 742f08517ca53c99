"""System accounts: the hub's, users', and running commands as them."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess

from .env import IN_CI

#: as root, hubs run as this unprivileged account (campushub up --as-user), as scripts/up does
HUB_ACCOUNT = "campushub-test"


def require_root(what: str):
    """Skip ``what`` without root on a developer's machine; in CI (which runs as root) fail instead."""
    import pytest

    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail(f"CI runs as root, and {what} needs it")
        pytest.skip(f"{what} needs root")


def ensure_account(name: str = HUB_ACCOUNT):
    """Create the unprivileged system account hubs run as, when running as root."""
    if os.geteuid() == 0 and subprocess.run(["id", name], capture_output=True).returncode:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
        )


def ensure_user(name: str):
    """Create a user's system account with a home folder (for system_users and Slurm profiles)."""
    if subprocess.run(["id", name], capture_output=True).returncode:
        subprocess.run(["useradd", "--create-home", name], check=True)


def kill_processes_of(user: str):
    """SIGKILL the processes running as ``user`` (a test account), one by one by their PID."""
    uid = pwd.getpwnam(user).pw_uid
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                os.kill(int(pid), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            continue


def account_environment(account: str | None) -> dict:
    """What a login would give ``account`` (HOME, XDG_RUNTIME_DIR), as its rootless Podman needs."""
    if not account:
        return {}
    pw = pwd.getpwnam(account)
    return {"HOME": pw.pw_dir, "USER": account, "XDG_RUNTIME_DIR": f"/run/user/{pw.pw_uid}"}


def as_account(account: str | None) -> list[str]:
    """The command prefix that runs a program as ``account`` (nothing for root)."""
    if not account:
        return []
    pw = pwd.getpwnam(account)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups"]
