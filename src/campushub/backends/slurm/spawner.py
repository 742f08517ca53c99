"""The spawner of ``slurm`` profiles, and the handler its jobs report their port to.

campushub's spawner fails fast: a job Slurm can never run (more CPUs than any node of the partition
has) would otherwise wait in the queue until the start timeout, and a job that dies before its server
reports back would be waited on just as long. Jobs report their port to the hub through
:class:`PortCallbackHandler`, which takes a port and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hmac
import pwd
import shlex
import time

from batchspawner import BatchSpawnerBase, JobStatus, SlurmSpawner
from batchspawner.batchspawner import format_template
from jupyterhub.apihandlers import APIHandler
from jupyterhub.spawner import SpawnException
from tornado import web
from traitlets import Integer, List, Unicode, observe

from ...hub import metrics
from ...server import userfile
from ..accounts import OwnAccount
from ..base import keep_state
from . import cluster, jobs
from .cluster import command_env

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


class CampusSlurmSpawner(SlurmSpawner, OwnAccount):
    """SlurmSpawner whose start ends promptly, with a reason, when the job cannot or did not run; never a job of a
    system account's."""

    batch_query_cmd = Unicode(f"squeue -h -j {{job_id}} -o '{jobs.QUERY_FORMAT}'").tag(config=True)
    never_runs = List(
        Unicode(), NEVER_RUNS, config=True, help="Pending reasons after which the job is cancelled and the start fails."
    )
    slurm_conf = Unicode("", config=True, help="SLURM_CONF for every Slurm command (empty: Slurm's default).")
    submitted_job = Unicode("", help="The last job submitted: batchspawner forgets it when the job vanishes.")
    jobs_ahead = Integer(None, allow_none=True, help="Pending jobs that would start before this one, at the last look.")
    usage_job = Unicode("", help="The job a stop ended, whose accounting the ledger reads after it.")
    _reported: asyncio.Event | None = None  # set when the starting job reports its port

    async def run_command(self, cmd, input=None, env=None):
        # batchspawner gives sbatch the server's environment, and squeue and scancel the hub's
        # whole environment (its secrets too) in a process that runs as the user: give those
        # only what Slurm's commands need
        env = dict(env) if env is not None else command_env()
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
        """Submit the job and follow it until its server reports its port; fail promptly, with a reason, when the job
        cannot or did not run.

        batchspawner's own start looks at the job and then at the port every ``startup_poll_interval``: here the
        port is taken the moment the job reports it (a server that reports once it listens answers the hub's first
        look), and squeue is asked a tenth of a second after the submission, then ever less often up to
        ``startup_poll_interval``.
        """
        self.own_account()
        self.submitted_job = ""
        self.jobs_ahead = None
        self.ip, self.port = self.traits()["ip"].default_value, 0
        if self.server:
            self.server.port = 0
        reported = self._reported = asyncio.Event()
        submitted = datetime.datetime.now()  # squeue's times are the local clock's too
        await self.submit_batch_script()
        if not self.job_id:
            raise SpawnException("Slurm accepted the job but gave no job id.", reason="slurm-refused")
        wait, next_count = 0.1, 0.0
        while True:
            status = await self.query_job_status()
            self.check_job(status)
            if status == JobStatus.RUNNING and self.port:
                break
            if status == JobStatus.PENDING and time.monotonic() > next_count:
                self.jobs_ahead = await self.count_ahead()
                next_count = time.monotonic() + 5
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reported.wait(), wait)
            wait = min(2 * wait, self.startup_poll_interval)
        metrics.queue_waited(self.job_info, submitted)  # squeue's start time of the running job
        # the hub's proxy routes to the node's address as Slurm knows it (its name may not resolve here)
        self.ip = await cluster.node_address(self.state_gethost(), self.slurm_conf, self.req_cluster)
        keep_state(self, self.ip, self.port)
        self.log.info("Slurm job %s of %s serves at %s:%s", self.job_id, self.user.name, self.ip, self.port)
        return self.ip, self.port

    @observe("port")
    def _port_reported(self, change):
        if change.new and self._reported is not None:
            self._reported.set()

    async def poll(self):
        # batchspawner forgets the job when it finds it gone: keep its id to say how it ended
        self.submitted_job = self.job_id or self.submitted_job
        return await super().poll()

    async def stop(self, now=False):
        self.usage_job = self.job_id or self.submitted_job  # for the ledger's accounting, after the stop
        await super().stop(now=now)
        self.submitted_job = ""  # stopped on request: nothing to explain

    @property
    def job_info(self) -> jobs.JobInfo | None:
        """The job as squeue saw it at the last poll."""
        return jobs.JobInfo.parse(self.job_status)

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
        return jobs.ahead_of(info.priority, queue)

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
                found = await self.as_user(
                    f"sacct -n -P{cluster} -j {int(job)} -o JobID,State,ExitCode,Reason,NodeList"
                )
            except RuntimeError:
                found = ""
            state = found.split("|")[1] if found.count("|") >= 3 else ""
            if state and state not in ("RUNNING", "PENDING", "COMPLETING"):
                break
            if failed_start and state == "PENDING":
                return {}
            await asyncio.sleep(0.5)
        uid = self.user_uid()
        end = jobs.ended(found, job, uid)
        # the log is in the user's folder: read as the user, bounded (server/userfile.py), never by the hub itself
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
        where = f"Slurm job {self.job_id} on {info.host}" if info.host not in ("", "n/a") else ""
        found: dict[str, str | int] = {"where": where}
        if info.left is not None and info.state.startswith("RUNNING"):
            found["ends"] = (datetime.datetime.now() + datetime.timedelta(minutes=info.left)).strftime("%H:%M")
            found["left"] = info.left
        return found

    def usage_facts(self) -> dict:
        """The job, its node, cluster, account, partition, GPUs and time limit, for the sessions ledger."""
        info = self.job_info
        return {
            "job_id": self.job_id or self.submitted_job,
            "host": info.host if info and info.host not in ("", "n/a") else "",
            "cluster": self.req_cluster,
            "account": self.req_account,
            "partition": info.partition if info else self.req_partition,
            "gpus": jobs.gpus_of(self.req_gres),
            "time_limit_minutes": jobs.limit_minutes(self.req_runtime),
        }

    async def accounting(self) -> dict:
        """Slurm's accounting of the ended job (sacct as the user): its state, elapsed and CPU seconds; {} if sacct
        has not recorded its end within a minute."""
        job = self.job_id or self.submitted_job or self.usage_job
        if not job:
            return {}
        cluster = f" -M {shlex.quote(self.req_cluster)}" if self.req_cluster else ""
        for _ in range(30):
            try:
                found = jobs.accounted(
                    await self.as_user(f"sacct -n -P -X{cluster} -j {int(job)} -o State,Elapsed,TotalCPU")
                )
            except RuntimeError:
                found = {}
            if found:
                return found
            await asyncio.sleep(2)
        return {}

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
        elif status == JobStatus.NOTFOUND:  # gone: nothing is left to cancel (batchspawner forgets it too)
            self.clear_state()
            raise self.job_ended(self.submitted_job)


class PortCallbackHandler(APIHandler):
    """``POST /hub/api/batchspawner``: a starting job says which port its server listens on.

    batchspawner's own handler sets every attribute the JSON names on the spawner whose
    token the caller holds, and every user's job holds its server's token. This one takes
    ``{"port": N}`` and nothing else, only with the token of that very server, only once, while its start is
    pending, and only from the node Slurm runs the job on (the connection's own address, never a header); the
    host always comes from Slurm. A job on the hub's own host may not name the hub's or the proxy's ports
    (``reserved``): the hub would route users to itself.
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
        node = await self.job_node(job)
        if port in self.reserved and await asyncio.to_thread(cluster.on_this_host, node):
            raise web.HTTPError(400, f"port: {port} is the hub's own on this host, not the job's server's.")
        job.port = port
        self.set_status(201)
        self.finish({"message": f"port {port} noted"})

    async def job_node(self, job) -> str:
        """The address of the node the job runs on, which must be the caller's: a 403 otherwise."""
        conf, where = getattr(job, "slurm_conf", ""), getattr(job, "req_cluster", "")
        node = await cluster.job_node(job.job_id, conf, where) if job.job_id else ""
        address = await cluster.node_address(node, conf, where) if node else ""
        caller = cluster.ip(self.request.connection.context.address[0])
        if not (address and caller in await asyncio.to_thread(cluster.addresses_of, address)):
            raise web.HTTPError(403, "Only the node that runs the job can report its server's port.")
        return address


#: where batchspawner registers its own handler at import, which PortCallbackHandler replaces
CALLBACK_PATH = r"/api/batchspawner"
