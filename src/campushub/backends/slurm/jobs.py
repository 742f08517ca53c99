"""What Slurm says about a user's job, in words for people: why it waits, how long it has, why it ended.

Pure functions over the text of ``squeue`` and ``sacct``; :mod:`campushub.backends.slurm` runs
the commands. Every value shown comes from Slurm, never from the user.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

#: squeue's fields for a job: state, partition, priority, (expected) start, time left, reason, host.
#: The reason may hold spaces ("ReqNodeNotAvail, UnavailableNodes:n1"), so it sits before the
#: host, which batchspawner reads as the last word.
QUERY_FORMAT = "%T %P %Q %S %L %r %B"

#: pending reasons (squeue's %r), for people
PENDING_WORDS = {
    "None": "just submitted: the scheduler has not looked at it yet",
    "Priority": "other jobs are ahead of yours",
    "Resources": "waiting for a free node with the CPUs, memory and GPUs it asks for",
    "Dependency": "waiting for another job to finish",
    "BeginTime": "waiting for the time it may begin",
    "ReqNodeNotAvail": "the nodes it needs are not available now (maintenance, or down)",
    # what squeue says of ReqNodeNotAvail once the scheduler has looked again (Slurm 22.05)
    "Nodes required for job are DOWN": "the nodes it needs are not available now (maintenance, or down)",
    "Reservation": "waiting for its reservation",
    "PartitionDown": "its partition is down",
    "PartitionInactive": "its partition is not taking jobs now",
    "JobHeldUser": "held by you (scontrol release lets it go)",
    "JobHeldAdmin": "held by an administrator",
    "QOSMaxJobsPerUserLimit": "you already run the most jobs your QOS allows",
    "AssocMaxJobsLimit": "you already run the most jobs your account allows",
    "AssocGrpJobsLimit": "your group already runs the most jobs it may",
    "AssocGrpCpuLimit": "your group already uses all the CPUs it may",
    "QOSGrpCpuLimit": "your QOS's jobs already use all the CPUs it may",
    "AssocGrpMemLimit": "your group already uses all the memory it may",
    "QOSGrpMemLimit": "your QOS's jobs already use all the memory it may",
}

#: how a job ended (sacct's State), for people, and what to do about it
ENDED_WORDS = {
    "OUT_OF_MEMORY": ("ran out of memory", "Choose a profile (or a choice) with more memory."),
    "TIMEOUT": ("reached its time limit", "Save your work before the time limit, or choose a longer one."),
    "CANCELLED": ("was cancelled", "Start it again when you need it."),
    "PREEMPTED": ("was preempted by a job with a higher priority", "Start it again."),
    "NODE_FAIL": ("ended because its node failed", "Start it again; tell us if it happens again."),
    "BOOT_FAIL": ("could not start: its node failed to boot", "Start it again; tell us if it happens again."),
    "DEADLINE": ("reached its deadline", "Start it again."),
    "FAILED": ("failed", "The last lines of its log below say why."),
    "COMPLETED": ("ended by itself", "Start it again when you need it."),
}


@dataclass
class JobInfo:
    """One line of squeue (:data:`QUERY_FORMAT`)."""

    state: str
    partition: str
    priority: int
    start: datetime.datetime | None  # expected (pending) or actual (running); None when Slurm has none
    left: int | None  # minutes
    reason: str
    host: str

    @classmethod
    def parse(cls, line: str) -> JobInfo | None:
        words = line.split()
        if len(words) < 7:
            return None
        try:
            priority = int(words[2])
        except ValueError:
            return None
        return cls(
            words[0], words[1], priority, timestamp(words[3]), minutes_left(words[4]), " ".join(words[5:-1]), words[-1]
        )

    def pending_words(self, ahead: int | None, now: datetime.datetime) -> str:
        """Why the job waits, when Slurm expects it to start, and how many jobs are ahead of it."""
        reason = self.reason.strip("()").split(",")[0]
        words = PENDING_WORDS.get(reason) or _limit_words(reason)
        text = f"Waiting in the Slurm queue: {words}."
        if self.start and self.start > now:
            wait = round((self.start - now).total_seconds() / 60)
            text += f" Slurm expects it to start around {self.start:%H:%M} (in {wait} min)."
        if ahead:
            text += f" {ahead} job{'s' if ahead > 1 else ''} ahead of it in partition {self.partition}."
        return text


def _limit_words(reason: str) -> str:
    if reason.startswith(("QOS", "Assoc")) and "Limit" in reason:
        return f"a limit of your account or QOS holds it for now (Slurm: {reason})"
    return f"Slurm says: {reason or 'no reason given'}"


def timestamp(text: str) -> datetime.datetime | None:
    """squeue's %S (local time, ``2026-11-26T20:41:10``), or None for N/A."""
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def minutes_left(text: str) -> int | None:
    """squeue's %L (``[D-]HH:MM:SS``, ``MM:SS``; ``UNLIMITED``, ``INVALID``) in whole minutes, or None."""
    found = seconds(text)
    return math.ceil(found / 60) if found is not None else None


def ahead_of(priority: int, queue: str) -> int:
    """How many pending jobs (squeue -t PD -o %Q, one priority a line) would start before one of ``priority``."""
    return sum(1 for line in queue.split() if line.isdigit() and int(line) > priority)


def ended(sacct: str, job: str, user_uid: int | None = None) -> dict:
    """How a job ended, from ``sacct -n -P -o JobID,State,ExitCode,Reason,NodeList`` (the job, then its steps).

    A step killed for memory (the server runs in an ``srun`` step) makes the job FAILED; the
    step's OUT_OF_MEMORY is the reason to show.
    """
    rows = [[*line.split("|"), ""][:5] for line in sacct.strip().splitlines() if line.count("|") >= 3]
    job_row = next((r for r in rows if r[0] == job), rows[0] if rows else ["", "UNKNOWN", "", "", ""])
    if any(r[1].startswith("OUT_OF_MEMORY") for r in rows):
        job_row = [job_row[0], "OUT_OF_MEMORY", *job_row[2:]]
    node = job_row[4] if job_row[4] not in ("None assigned", "") else ""
    state_words = job_row[1].split() or ["UNKNOWN"]
    state = state_words[0]
    what, advice = ENDED_WORDS.get(state, (f"ended ({state})", "The last lines of its log below say why."))
    if state == "NODE_FAIL" and node:
        what = f"ended because its node, {node}, failed (or the cluster lost touch with it)"
    if state == "CANCELLED" and len(state_words) > 2:  # "CANCELLED by 1001"
        by_user = user_uid is not None and state_words[2] == str(user_uid)
        what = "was cancelled by you" if by_user else "was cancelled by an administrator"
    reason = job_row[3] if job_row[3] not in ("None", "") else ""
    return {
        "kind": "Slurm",
        "job": job,
        "state": state,
        "exit_code": job_row[2],
        "reason": reason,
        "node": node,
        "words": f"Job {job} {what}.",
        "advice": advice,
    }


def gpus_of(gres: str) -> int:
    """The GPUs of a ``--gres`` value (``gpu:2``, ``gpu:a100:2``, ``gpu``); 0 without any."""
    count = 0
    for part in gres.split(","):
        fields = part.strip().split(":")
        if fields[0] == "gpu":
            count += int(fields[-1]) if len(fields) > 1 and fields[-1].isdigit() else 1
    return count


def seconds(text: str) -> float | None:
    """Slurm's durations (``[D-]HH:MM:SS``, ``MM:SS.mmm``, ``MM``) in seconds; None for anything else."""
    text = text.strip()
    days, _, clock = text.rpartition("-") if "-" in text else ("0", "", text)
    try:
        parts = [float(p) for p in clock.split(":")]
        whole_days = int(days)
    except ValueError:
        return None
    if not 1 <= len(parts) <= 3:
        return None
    if "-" in text:  # D-HH[:MM[:SS]]
        parts += [0.0] * (3 - len(parts))
    elif len(parts) == 1:  # a bare number: minutes, as --time takes them
        return parts[0] * 60
    else:  # [HH:]MM:SS
        parts = [0.0] * (3 - len(parts)) + parts
    hours, minutes_, secs = parts
    return whole_days * 86400 + hours * 3600 + minutes_ * 60 + secs


def limit_minutes(runtime: str) -> int | None:
    """A ``--time`` value in whole minutes; None when there is none."""
    found = seconds(runtime) if runtime else None
    return round(found / 60) if found is not None else None


def accounted(sacct: str) -> dict:
    """The job's line of ``sacct -n -P -X -o State,Elapsed,TotalCPU`` as the ledger keeps it; {} while it runs."""
    fields = sacct.strip().splitlines()[0].split("|") if sacct.strip() else []
    if len(fields) < 3 or fields[0].split()[0] in ("RUNNING", "PENDING", "COMPLETING", "REQUEUED", "SUSPENDED"):
        return {}
    return {
        "slurm_state": fields[0].split()[0][:32],
        "slurm_elapsed": seconds(fields[1]),
        "slurm_cpu_seconds": seconds(fields[2]),
    }
