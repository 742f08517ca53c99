"""``backend: slurm``: JupyterLab as a Slurm batch job (batchspawner's SlurmSpawner).

campushub's spawner fails fast: a job Slurm can never run (more CPUs than any node of the
partition has) would otherwise wait in the queue until the start timeout, and a job that dies
before its server reports back would be waited on just as long. Jobs report their port to the
hub through :class:`PortCallbackHandler`, which takes a port and nothing else.
"""

from __future__ import annotations

import asyncio
import datetime
import hmac
import ipaddress
import math
import os
import pwd
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

from batchspawner import BatchSpawnerBase, JobStatus, SlurmSpawner
from batchspawner.batchspawner import format_template
from jupyterhub.apihandlers import APIHandler
from jupyterhub.spawner import SpawnException
from pydantic import Field
from tornado import web
from traitlets import Integer, List, Unicode

from .. import hubapi, metrics, userfile
from ..choices import (
    TOKEN,
    AssociationChoice,
    Choices,
    CountChoice,
    DurationChoice,
    ListChoice,
    SizeChoice,
    duration_text,
    duration_words,
    minutes,
)
from ..choices import named as named_choices
from ..fields import HttpUrl, Model, Name, byte_count, is_local
from . import slurm_jobs
from .base import Backend, OwnAccount, ProfileBase, keep_state, limits, limits_words

BIN = Path(sys.executable).parent


class SlurmDefaults(Model):
    """How the hub talks to Slurm; shared by every ``slurm`` profile."""

    conf: Path | None = Field(None, description="path of `slurm.conf`, passed as `SLURM_CONF` (default: Slurm's own)")
    submit_as: Literal["sudo", "sbatch_uid"] = Field(
        "sudo",
        description="`sudo`: the hub runs `sudo -E -u USER sbatch` (the hub's account needs sudo rights to"
        " run sbatch, squeue, scancel, sacct and the hub's Python with `-I -m campushub.userfile`, which reads a"
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
        description="folder with `jupyterhub-singleuser` and"
        " `batchspawner-singleuser` on the compute nodes (a shared file system);"
        " default: the hub's venv `bin`",
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


class SlurmProfile(ProfileBase):
    """A JupyterLab batch job."""

    backend: Literal["slurm"]
    choices: SlurmChoices | None = Field(None, description="what users choose for their job, within bounds")
    partition: Name | None = Field(None, description="`--partition`")
    runtime: str | None = Field(
        None, pattern=r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$", description="`--time` (`HH:MM:SS` or `D-HH:MM:SS`)"
    )
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
        choices = profile.choices
        if choices and choices.gpus and profile.gres:
            found.append(f"profiles.{index}.gres: set either gres or choices.gpus, not both")
        if choices and choices.cpu and choices.cpu.min < 1:
            found.append(f"profiles.{index}.choices.cpu.min: a job needs at least 1 CPU")
        return found

    def preflight(self, site, profiles):
        """Partitions that do not exist, and choices beyond what the cluster's nodes or time limits allow.

        When Slurm does not answer, nothing is said: the hub must start for its other profiles.
        """
        found = []
        for i, profile in profiles:
            cluster = Cluster.read(site.slurm.conf, profile.cluster)
            if cluster is None:
                continue
            choices = profile.choices
            wanted = [(p, f"profiles.{i}.partition") for p in [profile.partition] if p]
            if choices and choices.partition:
                wanted += [(p, f"profiles.{i}.choices.partition.options") for p in choices.partition.options]
            for partition, where in wanted:
                if partition not in cluster.partitions:
                    have = ", ".join(cluster.partitions)
                    found.append(f"{where}: Slurm has no partition {partition!r} (it has {have})")
            if choices and choices.cpu and choices.cpu.max > cluster.most_cpus:
                found.append(
                    f"profiles.{i}.choices.cpu.max: {choices.cpu.max} CPUs, but no node has more than"
                    f" {cluster.most_cpus}"
                )
            if choices and choices.runtime:
                for partition in [p for p, _ in wanted] or [cluster.default]:
                    limit = cluster.partitions.get(partition)
                    if limit is not None and minutes(choices.runtime.max) > limit:
                        found.append(
                            f"profiles.{i}.choices.runtime.max: {choices.runtime.max}, but partition"
                            f" {partition} allows {duration_text(limit)}"
                        )
        return found

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
            extra.append(f"{named_choices(chosen)} as you choose below")
        return {
            "gets": limits_words(profile, extra),
            "runs": "as a batch job on the cluster, as your own cluster account; it waits in the queue while"
            " the cluster is busy",
            "keeps": "your files on the cluster's file systems (your home folder); the job ends when the server stops",
        }

    def needs_account(self, profile):
        return True  # jobs are submitted as the user

    def resolve_paths(self, site, folder):
        if site.slurm.conf:
            site.slurm.conf = (folder / site.slurm.conf).absolute()

    def configure_hub(self, c, site):
        from ..ports import listeners

        reserved = {port for _field, _host, port in listeners(site)}
        if site.front_door:
            reserved |= {site.front_door.http_port, site.front_door.https_port}
        hubapi.register(CALLBACK_PATH, PortCallbackHandler, {"reserved": sorted(reserved)})

    def spawner_class(self, profile):
        return "campushub.backends.slurm.CampusSlurmSpawner"

    def spawner(self, site, index, profile, config):
        """campushub's fail-fast SlurmSpawner, submitting as the user."""
        defaults = site.slurm
        python_bin = defaults.python_bin or BIN  # the same venv path must exist on the compute nodes
        cluster = f" -M {profile.cluster}" if profile.cluster else ""
        query = f"squeue -h{cluster} -j {{job_id}} -o '{slurm_jobs.QUERY_FORMAT}'"
        if cluster:
            query += " | grep -v '^CLUSTER'"  # -M puts a "CLUSTER: name" line before the job's
        # for campushub.lab_session: when JupyterLab warns, and saves, before the time limit
        config["environment"] = {
            **config["environment"],
            "CAMPUSHUB_WARN_MINUTES": ",".join(str(m) for m in defaults.warn_minutes),
            "CAMPUSHUB_SAVE_SECONDS": str(defaults.save_seconds),
        }
        # Slurm's cgroups enforce CPUs and memory; cpu_limit and mem_limit are for the resource meter
        if profile.cpu:
            config["cpu_limit"] = math.ceil(profile.cpu)  # the whole CPUs the job asks for
        # campushub's leaner start (campushub.singleuser) where the nodes' environment has campushub
        singleuser = python_bin / "campushub-singleuser"
        if not singleuser.exists():
            singleuser = python_bin / "jupyterhub-singleuser"
        config.update(
            cmd=[str(singleuser)],
            batchspawner_singleuser_cmd=str(python_bin / "batchspawner-singleuser"),
            req_cluster=profile.cluster or "",
            req_partition=profile.partition or "",
            req_runtime=profile.runtime or "",
            req_nprocs=str(math.ceil(profile.cpu)) if profile.cpu else "",
            req_memory=f"{math.ceil(byte_count(profile.memory) / 2**20)}M" if profile.memory else "",
            req_gres=profile.gres or "",
            req_options=" ".join(_sbatch_options(profile)),
            req_prologue=f"{PRIVATE_LOG}\n{profile.prologue}",
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


class Cluster:
    """What ``scontrol`` says of a cluster: partitions with their time limits (minutes), and the largest node."""

    def __init__(self, partitions: dict[str, int | None], default: str, most_cpus: int):
        self.partitions, self.default, self.most_cpus = partitions, default, most_cpus

    @classmethod
    def read(cls, conf, cluster: str | None) -> Cluster | None:
        env = {k: os.environ[k] for k in COMMAND_ENV if k in os.environ} | ({"SLURM_CONF": str(conf)} if conf else {})
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
        return cls(partitions, default, max(cpus, default=0))


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
    env = {k: os.environ[k] for k in COMMAND_ENV if k in os.environ} | ({"SLURM_CONF": conf} if conf else {})
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"sacctmgr: {err.decode().strip()[:200]}")
    found = {"account": [], "qos": []}
    for line in out.decode().splitlines():
        account, _, qos = line.partition("|")
        found["account"].append(account)
        found["qos"] += qos.split(",")
    found = {k: sorted({v for v in vs if TOKEN.match(v)}) for k, vs in found.items()}
    _ASSOCIATIONS[key] = (time.monotonic(), found)
    return found


def _sbatch_options(profile: SlurmProfile) -> list[str]:
    options = [f"--account={profile.account}"] if profile.account else []
    if profile.qos:
        options.append(f"--qos={profile.qos}")
    return options + profile.options


#: the job script's first line: its log (which names the user's paths, and is read for "why it ended") is the
#: user's alone. Slurm makes it with the submitting umask (0644 through sudo); the job starts in the home folder
PRIVATE_LOG = 'chmod go= "jupyterhub_slurmspawner_${SLURM_JOB_ID}.log" 2>/dev/null || true'

#: squeue reasons that mean the job will never start as it is
NEVER_RUNS = [
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "BadConstraints",
    "InvalidAccount",
    "InvalidQOS",
    "AssocMaxCpuPerJobLimit",
    "QOSMaxCpuPerJobLimit",
    "QOSMaxMemoryPerJob",
    "QOSMaxWallDurationPerJobLimit",
]


#: the hub's environment variables that squeue and scancel get (nothing secret)
COMMAND_ENV = ["PATH", "LANG", "LC_ALL", "SLURM_CONF"]


class CampusSlurmSpawner(SlurmSpawner, OwnAccount):
    """SlurmSpawner whose start ends promptly, with a reason, when the job cannot or did not run; never a job of a
    system account's."""

    batch_query_cmd = Unicode(f"squeue -h -j {{job_id}} -o '{slurm_jobs.QUERY_FORMAT}'").tag(config=True)
    never_runs = List(
        Unicode(), NEVER_RUNS, config=True, help="Pending reasons after which the job is cancelled and the start fails."
    )
    slurm_conf = Unicode("", config=True, help="SLURM_CONF for every Slurm command (empty: Slurm's default).")
    submitted_job = Unicode("", help="The last job submitted: batchspawner forgets it when the job vanishes.")
    jobs_ahead = Integer(None, allow_none=True, help="Pending jobs that would start before this one, at the last look.")

    async def run_command(self, cmd, input=None, env=None):
        # batchspawner gives sbatch the server's environment, and squeue and scancel the hub's
        # whole environment (its secrets too) in a process that runs as the user: give those
        # only what Slurm's commands need
        env = dict(env) if env is not None else {k: os.environ[k] for k in COMMAND_ENV if k in os.environ}
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        return await super().run_command(cmd, input=input, env=env)

    async def submit_batch_script(self):
        try:
            self.submitted_job = await super().submit_batch_script()
            keep_state(self)  # a hub that dies while the job waits finds it, rather than leave it to run for nobody
            return self.submitted_job
        except RuntimeError as e:
            raise SpawnException(f"Slurm refused the job: {e}", reason="slurm-refused") from None

    async def start(self):
        self.own_account()
        self.submitted_job = ""
        self.jobs_ahead = None
        submitted = datetime.datetime.now()  # squeue's times are the local clock's too
        next_count = 0.0
        starting = asyncio.ensure_future(super().start())
        try:
            while True:
                done, _ = await asyncio.wait({starting}, timeout=max(self.startup_poll_interval, 1))
                if done:
                    try:
                        found = starting.result()
                    except RuntimeError:
                        if self.submitted_job:  # batchspawner saw the job gone while pending or starting
                            raise self.job_ended(self.submitted_job) from None
                        raise
                    metrics.queue_waited(self.job_info, submitted)  # squeue's start time of the running job
                    return found
                if self.job_id:
                    status = await self.query_job_status()
                    self.check_job(status)
                    if status == JobStatus.PENDING and time.monotonic() > next_count:
                        self.jobs_ahead = await self.count_ahead()
                        next_count = time.monotonic() + 5
        finally:
            if not starting.done():
                starting.cancel()

    async def poll(self):
        # batchspawner forgets the job when it finds it gone: keep its id to say how it ended
        self.submitted_job = self.job_id or self.submitted_job
        return await super().poll()

    async def stop(self, now=False):
        await super().stop(now=now)
        self.submitted_job = ""  # stopped on request: nothing to explain

    @property
    def job_info(self) -> slurm_jobs.JobInfo | None:
        """The job as squeue saw it at the last poll."""
        return slurm_jobs.JobInfo.parse(self.job_status)

    async def as_user(self, command: str) -> str:
        """Run a Slurm (or other) command as the user, as batchspawner runs squeue."""
        prefix = format_template(self.exec_prefix, **self.get_req_subvars())
        return await self.run_command(f"{prefix} {command}")

    async def count_ahead(self) -> int | None:
        """Pending jobs in the job's partition that Slurm would start first (higher priority)."""
        info = self.job_info
        if info is None:
            return None
        try:
            queue = await self.as_user(f"squeue -h -t PENDING -p {shlex.quote(info.partition)} -o %Q")
        except RuntimeError:
            return None
        return slurm_jobs.ahead_of(info.priority, queue)

    async def progress(self):
        """Why the job waits (in words), when Slurm expects it to start, and how many jobs are ahead; then where."""
        while True:
            info = self.job_info
            if self.state_ispending() and info:
                now = datetime.datetime.now()
                yield {"progress": 20, "message": f"Job {self.job_id}: {info.pending_words(self.jobs_ahead, now)}"}
            elif self.state_isrunning():
                host = info.host if info else self.state_gethost()
                yield {"progress": 60, "message": f"Job {self.job_id} runs on {host}: waiting for JupyterLab to answer"}
                return
            elif self.job_id and self.state_isunknown():  # slurmctld restarting: the job waits on
                yield {"progress": 20, "message": f"Job {self.job_id}: Slurm's controller does not answer; waiting"}
            else:
                yield {"progress": 5, "message": "Submitting the job to Slurm"}
            await asyncio.sleep(1)

    async def end_reason(self, failed_start: bool = False) -> dict:
        """How the last job ended, from sacct (its steps' State, ExitCode, Reason), with its log's last lines.

        After a failed start the job may not have run at all (still pending, cancelled next): then nothing.
        """
        job = self.job_id or self.submitted_job
        if not job:
            return {}
        cluster = f" -M {shlex.quote(self.req_cluster)}" if self.req_cluster else ""
        found = ""
        for _ in range(4 if failed_start else 20):  # slurmctld tells slurmdbd within moments of the end
            try:
                found = await self.as_user(f"sacct -n -P{cluster} -j {int(job)} -o JobID,State,ExitCode,Reason")
            except RuntimeError:
                found = ""
            state = found.split("|")[1] if found.count("|") >= 3 else ""
            if state and state not in ("RUNNING", "PENDING", "COMPLETING"):
                break
            if failed_start and state == "PENDING":
                return {}
            await asyncio.sleep(0.5)
        uid = self.user_uid()
        end = slurm_jobs.ended(found, job, uid)
        # the log is in the user's folder: read as the user, bounded (campushub.userfile), never by the hub itself
        prefix = shlex.split(format_template(self.exec_prefix, **self.get_req_subvars()))
        end["log"] = await userfile.read_tail(self.user.name, self.job_log(job), prefix)
        return end

    def user_uid(self) -> int | None:
        try:
            return pwd.getpwnam(self.user.name).pw_uid
        except KeyError:
            return None

    def session_info(self) -> dict:
        """Where the job runs and when its time runs out, as squeue said at the last poll."""
        info = self.job_info
        if not (self.job_id and info):
            return {}
        found = {"where": f"Slurm job {self.job_id} on {info.host}" if info.host not in ("", "n/a") else ""}
        if info.left is not None and info.state.startswith("RUNNING"):
            found["ends"] = (datetime.datetime.now() + datetime.timedelta(minutes=info.left)).strftime("%H:%M")
            found["left"] = info.left
        return found

    def job_log(self, job: str) -> str:
        """Where Slurm writes the job's output (``--output`` of batchspawner's script)."""
        return f"{self.req_homedir}/jupyterhub_slurmspawner_{int(job)}.log"

    def job_ended(self, job: str) -> SpawnException:
        log = self.job_log(job)
        return SpawnException(
            f"Slurm job {job} ended before JupyterLab started; its log is {log}",
            reason="slurm-job-ended",
            status_code=500,
        )

    def check_job(self, status):
        """Raise with a reason the user can act on when the job will never serve."""
        if status == JobStatus.PENDING:
            info = self.job_info
            reason = info.reason.strip("()").split(",")[0] if info else ""
            if reason in self.never_runs:
                raise SpawnException(
                    f"Slurm cannot run job {self.job_id} as asked ({reason}): no node of the partition"
                    " has the CPUs, memory, GPUs or time it requests. Choose a smaller profile.",
                    reason="slurm-never-runs",
                )
        elif status == JobStatus.NOTFOUND:
            raise self.job_ended(self.job_id)


class PortCallbackHandler(APIHandler):
    """``POST /hub/api/batchspawner``: a starting job says which port its server listens on.

    batchspawner's own handler sets every attribute the JSON names on the spawner whose
    token the caller holds, and every user's job holds its server's token. This one takes
    ``{"port": N}`` and nothing else, only with the token of that very server, and only
    once, while its start is pending; the host always comes from Slurm (squeue's %B). A job on the hub's own
    host may not name the hub's or the proxy's ports (``reserved``): the hub would route users to itself.
    """

    def initialize(self, reserved: list[int]):
        self.reserved = reserved

    def check_xsrf_cookie(self):
        """Only tokens are accepted here, and token requests need no XSRF check."""

    async def post(self):
        token = self.get_auth_token() or ""
        user = self.current_user
        spawners = getattr(user, "spawners", {}).values() if token else ()  # services have none
        spawner = next((s for s in spawners if s.api_token and hmac.compare_digest(s.api_token, token)), None)
        job = getattr(spawner, "child_spawner", spawner)
        if not isinstance(job, BatchSpawnerBase):
            raise web.HTTPError(403, "Only a batch job's own server token can report its port.")
        if spawner.pending != "spawn" or job.port:
            raise web.HTTPError(409, "The server is not starting, or has reported its port already.")
        body = self.get_json_body()
        if not isinstance(body, dict) or set(body) != {"port"}:
            raise web.HTTPError(400, 'Send exactly {"port": N}; nothing else is accepted.')
        port = body["port"]
        if type(port) is not int or not 1 <= port <= 65535:
            raise web.HTTPError(400, "port: must be a whole number from 1 to 65535.")
        if port in self.reserved and await asyncio.to_thread(on_this_host, job.ip):
            raise web.HTTPError(400, f"port: {port} is the hub's own on this host, not the job's server's.")
        job.port = port
        self.set_status(201)
        self.finish({"message": f"port {port} noted"})


#: where batchspawner registers its own handler at import, which PortCallbackHandler replaces
CALLBACK_PATH = r"/api/batchspawner"


def on_this_host(host: str) -> bool:
    """Whether ``host`` (a node's name or address; "" while Slurm has not said) may be the hub's own host."""
    if not host:
        return True
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except OSError:
        return True
    return any(is_local(ipaddress.ip_address(address.split("%")[0])) for address in found)


BACKEND = Slurm()
