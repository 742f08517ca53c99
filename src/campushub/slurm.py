"""batchspawner's SlurmSpawner, made to fail fast and to notice jobs that die.

A job Slurm can never run (more CPUs than any node of the partition has) would
otherwise wait in the queue until the start timeout; a job that dies before its
server reports back would be waited on just as long.
"""

from __future__ import annotations

import asyncio
import os

from batchspawner import JobStatus, SlurmSpawner
from jupyterhub.spawner import SpawnException
from traitlets import List, Unicode

#: squeue reasons that mean the job will never start as it is
NEVER_RUNS = ["PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints",
              "InvalidAccount", "InvalidQOS", "AssocMaxCpuPerJobLimit", "QOSMaxCpuPerJobLimit",
              "QOSMaxMemoryPerJob", "QOSMaxWallDurationPerJobLimit"]


class CampusSlurmSpawner(SlurmSpawner):
    """SlurmSpawner whose start ends promptly, with a reason, when the job cannot or did not run."""

    # the reason (%r) sits between the state and the host that batchspawner parses
    batch_query_cmd = Unicode("squeue -h -j {job_id} -o '%T %r %B'").tag(config=True)
    never_runs = List(Unicode(), NEVER_RUNS, config=True,
                      help="Pending reasons after which the job is cancelled and the start fails.")
    slurm_conf = Unicode("", config=True, help="SLURM_CONF for every Slurm command (empty: Slurm's default).")
    submitted_job = Unicode("", help="The last job submitted: batchspawner forgets it when the job vanishes.")

    async def run_command(self, cmd, input=None, env=None):
        # batchspawner passes the spawner's environment to sbatch only; squeue and scancel need it too
        if self.slurm_conf:
            env = {**(env or os.environ), "SLURM_CONF": self.slurm_conf}
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
