"""The test cluster's Slurm commands."""

from __future__ import annotations

import os
import subprocess

from .env import REPO


def slurm(conf: str, *args, check: bool = True) -> str:
    """A Slurm command against the test cluster's ``conf``: its output."""
    return subprocess.run(
        list(args), capture_output=True, text=True, env={**os.environ, "SLURM_CONF": conf}, check=check
    ).stdout.strip()


def scripts_slurm(*args: str) -> str:
    """``scripts/slurm ARGS`` (the test clusters): its output; on failure an error with what the script said."""
    done = subprocess.run([str(REPO / "scripts" / "slurm"), *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"scripts/slurm {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout.strip()
