"""The hub's state directory: secrets made once, kept private (0600), reused."""

from __future__ import annotations

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
