"""batchspawner's SlurmSpawner, made to fail fast and to notice jobs that die.

A job Slurm can never run (more CPUs than any node of the partition has) would
otherwise wait in the queue until the start timeout; a job that dies before its
server reports back would be waited on just as long.
"""

from __future__ import annotations

import asyncio
import hmac
import os

from batchspawner import BatchSpawnerBase, JobStatus, SlurmSpawner
from jupyterhub import apihandlers
from jupyterhub.apihandlers import APIHandler
from jupyterhub.spawner import SpawnException
from tornado import web
from traitlets import List, Unicode

#: squeue reasons that mean the job will never start as it is
NEVER_RUNS = ["PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints",
              "InvalidAccount", "InvalidQOS", "AssocMaxCpuPerJobLimit", "QOSMaxCpuPerJobLimit",
              "QOSMaxMemoryPerJob", "QOSMaxWallDurationPerJobLimit"]


#: the hub's environment variables that squeue and scancel get (nothing secret)
COMMAND_ENV = ["PATH", "LANG", "LC_ALL", "SLURM_CONF"]


class CampusSlurmSpawner(SlurmSpawner):
    """SlurmSpawner whose start ends promptly, with a reason, when the job cannot or did not run."""

    # the reason (%r) sits between the state and the host that batchspawner parses
    batch_query_cmd = Unicode("squeue -h -j {job_id} -o '%T %r %B'").tag(config=True)
    never_runs = List(Unicode(), NEVER_RUNS, config=True,
                      help="Pending reasons after which the job is cancelled and the start fails.")
    slurm_conf = Unicode("", config=True, help="SLURM_CONF for every Slurm command (empty: Slurm's default).")
    submitted_job = Unicode("", help="The last job submitted: batchspawner forgets it when the job vanishes.")

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
            return self.submitted_job
        except RuntimeError as e:
            raise SpawnException(f"Slurm refused the job: {e}", reason="slurm-refused") from None

    async def start(self):
        self.submitted_job = ""
        starting = asyncio.ensure_future(super().start())
        try:
            while True:
                done, _ = await asyncio.wait({starting}, timeout=max(self.startup_poll_interval, 1))
                if done:
                    try:
                        return starting.result()
                    except RuntimeError:
                        if self.submitted_job:  # batchspawner saw the job gone while pending or starting
                            raise self.job_ended(self.submitted_job) from None
                        raise
                if self.job_id:
                    self.check_job(await self.query_job_status())
        finally:
            if not starting.done():
                starting.cancel()

    def job_ended(self, job: str) -> SpawnException:
        log = f"{self.req_homedir}/jupyterhub_slurmspawner_{job}.log"
        return SpawnException(f"Slurm job {job} ended before JupyterLab started; its log is {log}",
                              reason="slurm-job-ended", status_code=500)

    def check_job(self, status):
        """Raise with a reason the user can act on when the job will never serve."""
        if status == JobStatus.PENDING:
            words = self.job_status.split()
            reason = words[1] if len(words) > 1 else ""
            if reason.rstrip(",") in self.never_runs:
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
    once, while its start is pending; the host always comes from Slurm (squeue's %B).
    """

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
        job.port = port
        self.set_status(201)
        self.finish({"message": f"port {port} noted"})


CALLBACK_PATH = r"/api/batchspawner"


def install_port_callback():
    """Serve :class:`PortCallbackHandler` where batchspawner registered its handler at import."""
    apihandlers.default_handlers[:] = [
        h for h in apihandlers.default_handlers if h[0] != CALLBACK_PATH
    ] + [(CALLBACK_PATH, PortCallbackHandler)]
