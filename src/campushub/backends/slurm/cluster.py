"""What the hub asks Slurm about its cluster, with Slurm's own commands and a minimal environment: partitions and
the largest node (``check``), a user's accounts and QOS (their choices), and what ``doctor`` says of it."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from ...sitefile.choices import TOKEN, minutes
from ...sitefile.fields import is_local

#: the hub's environment variables that Slurm's commands get (nothing secret)
COMMAND_ENV = ["PATH", "LANG", "LC_ALL", "SLURM_CONF"]


def command_env(conf: str | Path | None = None) -> dict[str, str]:
    """The environment of a Slurm command the hub runs: :data:`COMMAND_ENV` of its own, and ``SLURM_CONF``."""
    env = {k: os.environ[k] for k in COMMAND_ENV if k in os.environ}
    return env | ({"SLURM_CONF": str(conf)} if conf else {})


class Cluster:
    """What ``scontrol`` says of a cluster: partitions with their time limits (minutes), the largest node, and each
    node's address."""

    def __init__(self, partitions: dict[str, int | None], default: str, most_cpus: int, nodes: dict[str, str]):
        self.partitions, self.default, self.most_cpus, self.nodes = partitions, default, most_cpus, nodes

    @classmethod
    def read(cls, conf, cluster: str | None) -> Cluster | None:
        env = command_env(conf)
        where = ["-M", cluster] if cluster else []
        try:
            parts, nodes = (
                subprocess.run(
                    ["scontrol", *where, "-o", "show", kind],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=15,
                    check=True,
                ).stdout
                for kind in ("partition", "node")
            )
        except (OSError, subprocess.SubprocessError):
            return None
        partitions, default = {}, ""
        for line in parts.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if "PartitionName" not in fields:
                continue
            limit = fields.get("MaxTime", "UNLIMITED")
            partitions[fields["PartitionName"]] = None if limit == "UNLIMITED" else minutes(limit)
            if fields.get("Default") == "YES":
                default = fields["PartitionName"]
        cpus = [int(f.split("=", 1)[1]) for f in nodes.split() if f.startswith("CPUTot=")]
        addresses = {}
        for line in nodes.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if "NodeName" in fields:
                addresses[fields["NodeName"]] = fields.get("NodeAddr", fields["NodeName"])
        return cls(partitions, default, max(cpus, default=0), addresses)


#: a node's name or address as Slurm writes it
NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$")


async def slurm(command: list[str], conf: str | Path | None = None) -> str:
    """A Slurm command's output, run by the hub (never through a shell) with :func:`command_env`."""
    process = await asyncio.create_subprocess_exec(
        *command, env=command_env(conf), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"{command[0]}: {err.decode().strip()[:200]}")
    return out.decode()


async def node_address(node: str, conf: str | Path | None = None, cluster: str = "") -> str:
    """The address Slurm reaches ``node`` at (its NodeAddr), which the hub's proxy routes to: a compute node's name
    need not resolve on the hub's host. ``node`` itself when Slurm does not say."""
    if not NODE.match(node):
        return node
    where = ["-M", cluster] if cluster else []
    try:
        found = await slurm(["scontrol", *where, "-o", "show", "node", node], conf)
    except (OSError, RuntimeError):
        return node
    fields = dict(f.split("=", 1) for f in found.split() if "=" in f)
    address = fields.get("NodeAddr", "")
    return address if NODE.match(address) else node


async def job_node(job: str, conf: str | Path | None = None, cluster: str = "") -> str:
    """The node a running job's batch step runs on (squeue's %B); "" when it does not run."""
    where = ["-M", cluster] if cluster else []
    try:
        found = await slurm(["squeue", *where, "-h", "-j", str(int(job)), "-t", "R", "-o", "%B"], conf)
    except (OSError, RuntimeError, ValueError):
        return ""
    node = found.strip().splitlines()[-1] if found.strip() else ""
    return node if NODE.match(node) else ""


#: (slurm.conf, cluster, user) -> (when read, {"account": [...], "qos": [...]})
_ASSOCIATIONS: dict[tuple[str, str, str], tuple[float, dict]] = {}
ASSOCIATIONS_TTL = 60  # s: read again at submission after this long, and on every form after a change


async def associations(conf: str, cluster: str, user: str) -> dict[str, list[str]]:
    """The accounts and QOS Slurm associates with ``user`` (sacctmgr), cached for a minute."""
    key = (conf, cluster, user)
    cached = _ASSOCIATIONS.get(key)
    if cached and time.monotonic() - cached[0] < ASSOCIATIONS_TTL:
        return cached[1]
    command = ["sacctmgr", "--noheader", "--parsable2", "show", "assoc", f"user={user}", "format=account,qos"]
    if cluster:
        command.append(f"cluster={cluster}")
    out = await slurm(command, conf)
    found: dict[str, list[str]] = {"account": [], "qos": []}
    for line in out.splitlines():
        account, _, qos = line.partition("|")
        found["account"].append(account)
        found["qos"] += qos.split(",")
    found = {k: sorted({v for v in vs if TOKEN.match(v)}) for k, vs in found.items()}
    _ASSOCIATIONS[key] = (time.monotonic(), found)
    return found


#: the name batchspawner gives every job it submits (its batch script's --job-name)
JOB_NAME = "spawner-jupyterhub"


def doctor(site, known) -> list[str]:
    """For ``doctor``: a controller that does not answer; else the server jobs of the hub's users that no server
    in the hub's database owns (a server that starts without a job id yet owns its user's jobs)."""
    scontrol = shutil.which("scontrol")
    if not scontrol:
        return ["slurm: scontrol is not installed on the hub's host; install Slurm's client commands"]
    env = command_env(site.slurm.conf)
    try:
        result = subprocess.run([scontrol, "ping"], env=env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return ["slurm: `scontrol ping` did not answer within 30 s; is slurmctld running?"]
    if result.returncode or "DOWN" in result.stdout:
        said = (result.stdout + result.stderr).strip().splitlines()  # DOWN comes first, then a banner
        return [f"slurm: slurmctld does not answer ({said[0] if said else 'no output'}); start it"]
    return [] if known is None else orphan_jobs(site, known, env)


def orphan_jobs(site, known, env: dict) -> list[str]:
    owned, starting = set(), set()
    for (user, _name), saved in known.servers.items():
        job = (saved.get("child_state") or saved).get("job_id")
        if job:
            owned.add(str(job))
        else:
            starting.add(user)
    findings = []
    for cluster in sorted({p.cluster or "" for p in site.profiles if p.backend == "slurm"}):
        where = ["-M", cluster] if cluster else []
        command = ["squeue", "-h", "-a", *where, "-n", JOB_NAME, "-o", "%i|%u|%T"]
        try:
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in result.stdout.splitlines():
            job, _, rest = line.strip().partition("|")
            user, _, state_name = rest.partition("|")
            if not state_name or user not in known.users or job in owned or user in starting:
                continue
            cancel = " ".join(["scancel", *where, job])
            findings.append(
                f"slurm: job {job} ({user}, {state_name}) is a server job ({JOB_NAME}) that no server of the hub"
                f" owns; cancel it: {cancel}"
            )
    return findings


def ip(text: str):
    address = ipaddress.ip_address(text.split("%")[0])
    return getattr(address, "ipv4_mapped", None) or address


def addresses_of(host: str) -> set:
    """The IP addresses ``host`` (a name or an address) resolves to here; none when it does not."""
    try:
        return {ip(str(info[4][0])) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except (OSError, ValueError):
        return set()


def on_this_host(host: str) -> bool:
    """Whether ``host`` (a node's name or address; "" while Slurm has not said) may be the hub's own host."""
    found = addresses_of(host) if host else set()
    return not found or any(is_local(address) for address in found)
