"""The test cluster's Slurm commands."""

from __future__ import annotations

import os
import subprocess


def slurm(conf: str, *args, check: bool = True) -> str:
    """A Slurm command against the test cluster's ``conf``: its output."""
    return subprocess.run(
        list(args), capture_output=True, text=True, env={**os.environ, "SLURM_CONF": conf}, check=check
    ).stdout.strip()
