"""The hub's state directory: secrets made once, kept private (0600), reused."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path


def prepare(state_dir: Path) -> Path:
    """Create the state directory (0700), or tighten an existing one."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    return state_dir


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists and only its owner can read it (for the sqlite database)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.chmod(0o600)
    return path


def secret(path: Path, make=lambda: secrets.token_hex(32)) -> tuple[str, bool]:
    """Return the secret stored at ``path`` and whether it was just created.

    A missing file gets ``make()``'s value, written with mode 0600; an existing
    file is reused and its mode tightened to 0600.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        value = path.read_text().strip()
        if value:
            return value, False
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    value = make()
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value, True


#: below this much free space in the state directory the hub is not started (its database grows with use)
MIN_FREE_BYTES = 16 * 2**20
#: the running hub's process id, written by ``campushub up`` and removed when it stops
HUB_PID_FILE = "hub.pid"


def problems(state_dir: Path) -> list[str]:
    """Why the hub could not keep its state in ``state_dir``: read-only, not writable, or (nearly) full."""
    where = "hub.state_dir"
    try:
        prepare(state_dir)
        probe = state_dir / ".campushub-write-test"
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as e:
        if e.errno == errno.EROFS:
            return [f"{where}: {state_dir} is on a read-only file system; the hub writes its database there"]
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return [f"{where}: no space left for {state_dir} (free some, or move state_dir to a larger disk)"]
        return [f"{where}: cannot write in {state_dir}: {e.strerror}"]
    fs = os.statvfs(state_dir)
    free = fs.f_bavail * fs.f_frsize
    if free < MIN_FREE_BYTES:
        return [
            f"{where}: only {free // 2**20} MiB free for {state_dir} (the hub needs at least"
            f" {MIN_FREE_BYTES // 2**20} MiB for its database; free some, or move state_dir to a larger disk)"
        ]
    return []


def running_hub(state_dir: Path) -> int | None:
    """The process id of the hub that ``campushub up`` runs on ``state_dir``, if it still runs."""
    try:
        pid = int((state_dir / HUB_PID_FILE).read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"jupyterhub" in command else None
