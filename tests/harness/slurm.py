"""The test cluster's Slurm commands."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

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


def job_state(conf: str, job: str) -> str:
    """A job's state as squeue shows it (RUNNING, PENDING...); empty once it has left the queue."""
    return slurm(conf, "squeue", "-h", "-j", job, "-o", "%T", check=False)


def cluster_report(conf: str) -> str:
    """What a failed wait on the cluster should show: its nodes' states and reasons, its queue with each job's
    reason, and the end of the controller's log."""
    nodes = slurm(conf, "sinfo", "-h", "-N", "-o", "%N %T %E", check=False)
    queue = slurm(conf, "squeue", "-h", "-o", "%i %u %T %r %C %m", check=False)
    log = Path(conf).with_name("slurmctld.log")
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else "(no slurmctld.log)"
    return f"nodes:\n{nodes}\nqueue:\n{queue}\nslurmctld.log:\n{tail}"


def occupy_node(conf: str, seconds: int, timeout: float = 60) -> str:
    """A job holding the single node's two CPUs for ``seconds``, once it runs: its id. A job of an earlier test
    that is still ending can hold the node for a while, so the wait is generous and says what it saw."""
    job = slurm(
        conf,
        *("sbatch", "--parsable", "-p", "campus", "-c", "2", "--mem=100M", "--output=/dev/null"),
        *(f"--time={seconds // 60 + 1}", "--wrap", f"sleep {seconds}"),
    )
    deadline = time.monotonic() + timeout
    while job_state(conf, job) != "RUNNING":
        assert time.monotonic() < deadline, f"job {job} did not start in {timeout} s\n{cluster_report(conf)}"
        time.sleep(0.5)
    return job
