"""``backend: slurm``: JupyterLab as a Slurm batch job (batchspawner's SlurmSpawner), as one slice: the
profile's model, its checks and card, and the spawner's settings; the spawner itself is in
:mod:`.spawner`, what the hub asks the cluster in :mod:`.cluster`, how a job's state reads in :mod:`.jobs`.
"""

from __future__ import annotations

import functools
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from ...hub import api
from ...server import job_port
from ...sitefile.choices import (
    AssociationChoice,
    Choices,
    CountChoice,
    DurationChoice,
    ListChoice,
    SizeChoice,
    duration_text,
    duration_words,
    minutes,
    named,
)
from ...sitefile.fields import HttpUrl, Model, Name, byte_count, is_loopback
from ..base import Backend, ProfileBase, limits, limits_words
from . import cluster, jobs
from .cluster import Cluster, associations, on_this_host

#: the job script's first line: its log (which names the user's paths, and is read for "why it ended") is the
#: user's alone. Slurm makes it with the submitting umask (0644 through sudo); the job starts in the home folder
PRIVATE_LOG = 'chmod go= "jupyterhub_slurmspawner_${SLURM_JOB_ID}.log" 2>/dev/null || true'
#: then the server listens on its node's address as Slurm knows it (NodeAddr, where the hub's proxy routes to), not
#: on every interface of the node: JupyterHub's server takes its address from JUPYTERHUB_SERVICE_URL
NODE_ADDRESS = r"""node_ip=$(getent ahostsv4 "$(scontrol show node "$SLURMD_NODENAME" -o 2>/dev/null \
  | sed -n 's/.* NodeAddr=\([^ ]*\).*/\1/p')" 2>/dev/null | awk 'NR == 1 {print $1}' || true)
[ -z "$node_ip" ] || [ -z "${JUPYTERHUB_SERVICE_URL:-}" ] \
  || export JUPYTERHUB_SERVICE_URL="${JUPYTERHUB_SERVICE_URL/\/\/0.0.0.0:/\/\/$node_ip:}"
"""
BIN = Path(sys.executable).parent


class SlurmDefaults(Model):
    """How the hub talks to Slurm; shared by every ``slurm`` profile."""

    conf: Path | None = Field(None, description="path of `slurm.conf`, passed as `SLURM_CONF` (default: Slurm's own)")
    submit_as: Literal["sudo", "sbatch_uid"] = Field(
        "sudo",
        description="`sudo`: the hub runs `sudo -E -u USER sbatch` (the hub's account needs sudo rights to"
        " run sbatch, squeue, scancel, sacct and the hub's Python with `-I -m campushub.server.userfile`, which reads a"
        " job's log, as users). `sbatch_uid`: the hub runs `sbatch --uid=USER --gid=USER` and must be root",
    )
    hub_connect_url: HttpUrl | None = Field(
        None,
        description="the hub's API as compute nodes reach it"
        " (`hub.hub_ip` must then listen there); default: the hub's own",
    )
    hub_host_runs_jobs: bool = Field(
        True,
        description="whether users' jobs (or their shells) can run on the hub's host: a node of the cluster, or a"
        " login node. `true` guards the hub there as it does for `local` profiles (the proxy secret, ports below"
        " 1024); `false` where the hub runs on a service host, or in a container, that no job or user reaches",
    )
    warn_minutes: list[Annotated[int, Field(ge=1, le=1440)]] = Field(
        [10, 2],
        description="minutes before a job's time limit at which JupyterLab warns its user (campushub's"
        " JupyterLab extension, which also shows the time left)",
    )
    save_seconds: Annotated[int, Field(ge=0, le=3600)] = Field(
        60, description="seconds before a job's time limit at which JupyterLab saves every open document; 0: never"
    )
    python_bin: Path | None = Field(
        None,
        description="folder with `campushub-singleuser` on the compute nodes (a shared file system; without"
        " campushub there, `jupyterhub-singleuser` and `batchspawner-singleuser`); default: the hub's venv `bin`",
    )


class SlurmChoices(Choices):
    """What users of a ``slurm`` profile may choose for their job; Slurm enforces it."""

    runtime: DurationChoice | None = Field(None, description="`--time`")
    cpu: CountChoice | None = Field(None, description="`--cpus-per-task`, at least 1")
    memory: SizeChoice | None = Field(None, description="`--mem`")
    gpus: CountChoice | None = Field(None, description="`--gres=gpu:N`")
    partition: ListChoice | None = Field(None, description="`--partition`")
    account: AssociationChoice | None = Field(None, description="`--account`")
    qos: AssociationChoice | None = Field(None, description="`--qos`")


#: a profile's fixed ``--time``: the two forms nobody reads two ways. Slurm's shorter ones read otherwise than a
#: clock: ``30:00`` is thirty minutes, ``00:30`` thirty seconds, ``1-02`` a day and two hours
TIME_LIMIT = re.compile(r"^(?:\d{1,3}-)?\d{1,2}:[0-5]\d:[0-5]\d$")


def _time_limit(value: str) -> str:
    if not TIME_LIMIT.match(value):
        raise ValueError(f"{value[:40]!r} is not a time limit in HH:MM:SS or D-HH:MM:SS (such as 02:00:00)")
    if minutes(value) == 0:
        raise ValueError("a time limit of 00:00:00 is none (leave runtime out for the partition's own)")
    return value


TimeLimit = Annotated[str, AfterValidator(_time_limit)]


class SlurmProfile(ProfileBase):
    """A JupyterLab batch job."""

    backend: Literal["slurm"]
    choices: SlurmChoices | None = Field(None, description="what users choose for their job, within bounds")
    partition: Name | None = Field(None, description="`--partition`")
    runtime: TimeLimit | None = Field(None, description="`--time` (`HH:MM:SS` or `D-HH:MM:SS`)")
    gres: Name | None = Field(None, description="`--gres`")
    cluster: Name | None = Field(None, description="`-M` on sbatch, squeue and scancel (needs slurmdbd)")
    account: Name | None = Field(None, description="`--account`")
    qos: Name | None = Field(None, description="`--qos`")
    options: list[Name] = Field([], description="more sbatch options, as written")
    prologue: str = Field("", description="shell lines before the server in the job script")
    epilogue: str = Field("", description="shell lines after the server in the job script")


class Slurm(Backend):
    name = "slurm"
    profile = SlurmProfile
    defaults = SlurmDefaults
    choices = SlurmChoices
    persistent = True

    def on_hub_host(self, site):
        return site.slurm.hub_host_runs_jobs

    def problems(self, site, index, profile):
        found = super().problems(site, index, profile)
        if index == next(i for i, p in enumerate(site.profiles) if p.backend == self.name):
            found += _reach_problems(site)  # the cluster's, said once
        choices = profile.choices
        if choices and choices.gpus and profile.gres:
            found.append(f"profiles.{index}.gres: set either gres or choices.gpus, not both")
        if choices and choices.cpu and choices.cpu.min < 1:
            found.append(f"profiles.{index}.choices.cpu.min: a job needs at least 1 CPU")
        return found

    def preflight(self, site, profiles):
        """Partitions that do not exist, choices beyond what the cluster's nodes or time limits allow, and a node on
        the hub's host where the site says none is.

        When Slurm does not answer, nothing is said: the hub must start for its other profiles.
        """
        found = []
        for i, profile in profiles:
            cluster = Cluster.read(site.slurm.conf, profile.cluster)
            if cluster is None:
                continue
            here = [n for n, address in cluster.nodes.items() if on_this_host(address)]
            if here and not site.slurm.hub_host_runs_jobs:
                found.append(
                    f"slurm.hub_host_runs_jobs: false, but Slurm's node {here[0]} ({cluster.nodes[here[0]]}) is this"
                    " host: users' jobs run here, so the hub must be guarded as for local profiles (set it to true)"
                )
            found += _cluster_problems(i, profile, cluster)
        return list(dict.fromkeys(found))

    def choice_settings(self, settings, chosen):
        found = limits(chosen)  # for the resource meter (CPU_LIMIT, MEM_LIMIT); Slurm enforces the req_ ones
        if "cpu" in chosen:
            found["req_nprocs"] = str(int(chosen["cpu"]))
        if "memory" in chosen:
            found["req_memory"] = f"{math.ceil(int(chosen['memory']) / 2**20)}M"
        if "runtime" in chosen:
            found["req_runtime"] = str(int(chosen["runtime"]))  # minutes, as sbatch --time takes them
        if "gpus" in chosen:
            found["req_gres"] = f"gpu:{int(chosen['gpus'])}" if chosen["gpus"] else ""
        if "partition" in chosen:
            found["req_partition"] = chosen["partition"]
        if "account" in chosen:  # for the ledger (batchspawner's script takes it from req_options)
            found["req_account"] = chosen["account"]
        options = [settings.get("req_options", "")]
        options += [f"--{name}={chosen[name]}" for name in ("account", "qos") if name in chosen]
        found["req_options"] = " ".join(o for o in options if o)
        return found

    async def user_options_for(self, settings, user, name):
        return (await associations(settings.get("slurm_conf", ""), settings.get("req_cluster", ""), user))[name]

    def card(self, site, profile):
        choices = profile.choices
        extra = [f"partition {profile.partition}"] if profile.partition else []
        if profile.runtime:
            extra.append(f"up to {duration_words(minutes(profile.runtime))}")
        if profile.gres:
            extra.append(f"--gres {profile.gres}")
        chosen = [n for n in ("runtime", "gpus", "partition", "account", "qos") if choices and getattr(choices, n)]
        if chosen:
            extra.append(f"{named(chosen)} as you choose below")
        return {
            "gets": limits_words(profile, extra),
            "runs": "as a batch job on the cluster, as your own cluster account; it waits in the queue while"
            " the cluster is busy",
            "keeps": "your files on the cluster's file systems (your home folder); the job ends when the server stops",
        }

    def stops(self, profile):
        limited = profile.runtime or (profile.choices and profile.choices.runtime)
        return ["when its time limit runs out"] if limited else []

    def needs_account(self, profile):
        return True  # jobs are submitted as the user

    def resolve_paths(self, site, folder):
        if site.slurm.conf:
            site.slurm.conf = (folder / site.slurm.conf).absolute()

    def doctor(self, site, known):
        return cluster.doctor(site, known)

    def install(self, site):
        from ...ops.ports import listeners

        reserved = {port for _field, _host, port in listeners(site)}
        if site.front_door:
            reserved |= {site.front_door.http_port, site.front_door.https_port}
        from .spawner import CALLBACK_PATH, PortCallbackHandler

        api.register(CALLBACK_PATH, PortCallbackHandler, {"reserved": sorted(reserved)})

    def spawner_class(self, profile):
        return "campushub.backends.slurm.spawner.CampusSlurmSpawner"

    def spawner(self, site, index, profile, config):
        """campushub's fail-fast SlurmSpawner, submitting as the user."""
        defaults = site.slurm
        python_bin = defaults.python_bin or BIN  # the same venv path must exist on the compute nodes
        cluster = f" -M {profile.cluster}" if profile.cluster else ""
        query = f"squeue -h{cluster} -j {{job_id}} -o '{jobs.QUERY_FORMAT}'"
        if cluster:
            query += " | grep -v '^CLUSTER'"  # -M puts a "CLUSTER: name" line before the job's
        # for campushub.server.lab_session: when JupyterLab warns, and saves, before the time limit
        config["environment"] = {
            **config["environment"],
            "CAMPUSHUB_WARN_MINUTES": ",".join(str(m) for m in defaults.warn_minutes),
            "CAMPUSHUB_SAVE_SECONDS": str(defaults.save_seconds),
        }
        # Slurm's cgroups enforce CPUs and memory; cpu_limit and mem_limit are for the resource meter
        if profile.cpu:
            config["cpu_limit"] = math.ceil(profile.cpu)  # the whole CPUs the job asks for
        # campushub's leaner start (campushub.server.singleuser) where the nodes' environment has campushub: it
        # reports its port once it listens (campushub.server.job_port), without batchspawner-singleuser's imports
        singleuser, wrapper = python_bin / "campushub-singleuser", ""
        if not singleuser.exists():
            singleuser = python_bin / "jupyterhub-singleuser"
        if singleuser.name == "campushub-singleuser" and reports_own_port(python_bin):
            config["environment"][job_port.REPORT_PORT] = "1"
        else:  # the nodes' environment has no campushub, or one from before campushub.server.job_port
            wrapper = str(python_bin / "batchspawner-singleuser")
        config.update(
            cmd=[str(singleuser)],
            batchspawner_singleuser_cmd=wrapper,
            req_cluster=profile.cluster or "",
            req_partition=profile.partition or "",
            req_account=profile.account or "",
            req_runtime=profile.runtime or "",
            req_nprocs=str(math.ceil(profile.cpu)) if profile.cpu else "",
            req_memory=f"{math.ceil(byte_count(profile.memory) / 2**20)}M" if profile.memory else "",
            req_gres=profile.gres or "",
            req_options=" ".join(_sbatch_options(profile)),
            req_prologue=f"{PRIVATE_LOG}\n{NODE_ADDRESS}{profile.prologue}",
            req_epilogue=profile.epilogue,
            batch_query_cmd=query,
            batch_cancel_cmd=f"scancel{cluster} {{job_id}}",
        )
        if defaults.submit_as == "sudo":
            config.update(exec_prefix="sudo -E -u {username}", batch_submit_cmd=f"sbatch --parsable{cluster}")
        else:  # the hub is root and Slurm switches user itself
            config.update(
                exec_prefix="", batch_submit_cmd=f"sbatch --parsable{cluster} --uid={{username}} --gid={{username}}"
            )
        if defaults.conf:
            config["slurm_conf"] = str(defaults.conf)
        if defaults.hub_connect_url:
            config["hub_connect_url"] = defaults.hub_connect_url
        return self.spawner_class(profile), config


@functools.lru_cache(maxsize=8)
def reports_own_port(python_bin: Path) -> bool:
    """Whether the campushub in the nodes' environment (``python_bin``) reports a job's port itself: the hub's own
    does; another is asked once (an older one ignores the request, and its job would never report)."""
    if python_bin == BIN:
        return True
    try:
        check = [str(python_bin / "python"), "-c", f"import {job_port.__name__}"]
        return subprocess.run(check, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _cluster_problems(i: int, profile: SlurmProfile, cluster: Cluster) -> list[str]:
    """A profile's partitions that the cluster does not have, and choices beyond its nodes or time limits."""
    found = []
    choices = profile.choices
    wanted = [(p, f"profiles.{i}.partition") for p in [profile.partition] if p]
    if choices and choices.partition:
        wanted += [(p, f"profiles.{i}.choices.partition.options") for p in choices.partition.options]
    for partition, where in wanted:
        if partition not in cluster.partitions:
            found.append(f"{where}: Slurm has no partition {partition!r} (it has {', '.join(cluster.partitions)})")
    if choices and choices.cpu and choices.cpu.max > cluster.most_cpus:
        found.append(
            f"profiles.{i}.choices.cpu.max: {choices.cpu.max} CPUs, but no node has more than {cluster.most_cpus}"
        )
    if choices and choices.runtime:
        for partition in [p for p, _ in wanted] or [cluster.default]:
            limit = cluster.partitions.get(partition)
            if limit is not None and minutes(choices.runtime.max) > limit:
                found.append(
                    f"profiles.{i}.choices.runtime.max: {choices.runtime.max}, but partition {partition} allows"
                    f" {duration_text(limit)}"
                )
    return found


def _reach_problems(site) -> list[str]:
    """Where jobs run on other hosts: a hub API the nodes would reach as themselves, or one the hub does not listen
    at."""
    if site.slurm.hub_host_runs_jobs:
        return []
    hub = site.hub
    given = site.slurm.hub_connect_url
    url = given or f"http://{hub.hub_connect_ip or hub.hub_ip}:{hub.hub_port}"
    host = urlsplit(url).hostname or ""
    if is_loopback(url) or host in ("", "0.0.0.0"):
        field = "slurm.hub_connect_url" if given else "hub.hub_ip"
        return [
            f"{field}: jobs run on other hosts (slurm.hub_host_runs_jobs: false), but they would reach the hub's API"
            f" at {url}, which a compute node cannot: set hub.hub_ip to an address the nodes reach (or 0.0.0.0) and"
            " slurm.hub_connect_url to the hub's API there"
        ]
    if given and is_loopback(hub.hub_ip):
        return [
            f"hub.hub_ip: {hub.hub_ip} listens on loopback only, but the nodes reach the hub at {given}"
            f" (slurm.hub_connect_url): set hub.hub_ip to {host} (or 0.0.0.0)"
        ]
    return []


def _sbatch_options(profile: SlurmProfile) -> list[str]:
    # a server whose node fails ends (NODE_FAIL, which the user is told), rather than start again elsewhere minutes
    # later while the hub still routes to the lost node
    options = ["--no-requeue"]
    if profile.account:
        options.append(f"--account={profile.account}")
    if profile.qos:
        options.append(f"--qos={profile.qos}")
    return options + profile.options


BACKEND = Slurm()
