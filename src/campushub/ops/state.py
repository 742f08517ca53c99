"""The hub's state directory: secrets made once, kept private (0600), reused; the hub's pid; its owner."""

from __future__ import annotations

import errno
import os
import pwd
import secrets
from pathlib import Path

from ..sitefile.errors import StartError
from . import processes


def prepare(state_dir: Path) -> Path:
    """Create the state directory (0700), or tighten an existing one."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    return state_dir


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists and only its owner can read it (for the sqlite database, a dump's target)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.chmod(0o600)
    return path


def write_private(path: Path, data: str | bytes, *, keep_existing: bool = False) -> bool:
    """Write ``data`` to ``path``, readable by its owner only (0600), whole or not at all: a reader sees the old
    file or the new one, never a part. With ``keep_existing``, a file already there wins (returns False)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    try:
        if keep_existing:
            os.link(partial, path)  # fails when another process made it first
        else:
            os.replace(partial, path)
    except FileExistsError:
        return False
    finally:
        partial.unlink(missing_ok=True)
    return True


#: what :func:`stored` gives for a secret not made yet: ``campushub up``'s check of the config runs before the hub
#: makes its secrets (:func:`campushub.hub.configurer.install`)
NOT_MADE_YET = "(made when the hub starts)"


def stored(path: Path) -> str:
    """The secret kept at ``path``, or :data:`NOT_MADE_YET`; never makes one."""
    try:
        return path.read_text().strip() or NOT_MADE_YET
    except FileNotFoundError:
        return NOT_MADE_YET


def secret(path: Path, make=lambda: secrets.token_hex(32)) -> tuple[str, bool]:
    """Return the secret stored at ``path`` and whether it was just created.

    A missing (or empty) file gets ``make()``'s value, written with mode 0600; an existing
    file is reused and its mode tightened to 0600.
    """
    if path.exists():
        path.chmod(0o600)
        value = path.read_text().strip()
        if value:
            return value, False
        path.unlink()
    value = make()
    if not write_private(path, value + "\n", keep_existing=True):
        return secret(path, make)  # another process made it first: use theirs
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
    except (OSError, ValueError):
        return None
    return pid if processes.runs(pid, "jupyterhub") else None


def record_hub(state_dir: Path, pid: int):
    """Note the hub's process id in the state directory, for ``backup``, ``restore``, ``upgrade`` and ``doctor``."""
    write_private(state_dir / HUB_PID_FILE, f"{pid}\n")


def become(account: str, state_dir: Path):
    """Hand the state directory to ``account`` and drop this process's root privileges to it."""
    try:
        pw = pwd.getpwnam(account)
    except KeyError:
        raise StartError(
            [f"--as-user: there is no account {account!r} (create it: useradd --system {account})"]
        ) from None
    if os.geteuid() != 0:
        raise StartError(["--as-user: only root can run the hub as another account"])
    prepare(state_dir)
    for folder, dirs, files in os.walk(state_dir):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, pw.pw_uid, pw.pw_gid)
    os.initgroups(account, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    os.environ.update(HOME=pw.pw_dir, USER=account, LOGNAME=account)
