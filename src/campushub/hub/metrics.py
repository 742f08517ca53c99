"""Prometheus: campushub's own series beside JupyterHub's on ``/hub/metrics``, and who may read them.

JupyterHub serves ``/hub/metrics`` to tokens with the ``read:metrics`` scope (admins have it).
The site file's ``metrics`` section gives a service with that scope and nothing else, whose
token the Prometheus scrape sends. The series below add what JupyterHub's own do not say: which
profile and backend a start was for, why it failed, why a session ended, how long a Slurm job
queued, and who runs what now. Label values come from the site file and the backends (profile
slugs, backend names, Slurm and container states), never from users, so they stay few.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import weakref
from time import monotonic

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from ..sitefile.sections import MetricsSettings

SERVICE = "campushub-metrics"
ROLE = "campushub-metrics-role"
SCOPES = ["read:metrics"]
#: seconds: a forked local server takes a tenth of one, a Slurm job may queue for hours
BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, float("inf"))


def warnings(settings: MetricsSettings, environ) -> list[str]:
    """The token's variable or file missing where ``check`` runs: the hub would refuse to start."""
    source = settings.token
    if not settings.enabled or source is None:
        return []
    if source.env and not environ.get(source.env):
        return [f"metrics.token.env: {source.env} is not set here; the hub will refuse to start without it"]
    if source.file and not source.file.is_file():
        return [f"metrics.token.file: {source.file} does not exist here; the hub will refuse to start without it"]
    return []


START_SECONDS = Histogram(
    "campushub_server_start_seconds",
    "From a start's beginning (its turn included) until the server listens, for starts that succeeded",
    ["profile", "backend"],
    buckets=BUCKETS,
)
START_FAILURES = Counter(
    "campushub_server_start_failures",
    "Starts that failed, by the spawner's reason (a SpawnException's, timeout, not-listening, or the error's type)",
    ["profile", "backend", "reason"],
)
SESSIONS_ENDED = Counter(
    "campushub_sessions_ended",
    "Servers that ended without being stopped through the hub, by how (Slurm's job state, the container's; local:"
    " exited)",
    ["profile", "backend", "reason"],
)
QUEUE_WAIT_SECONDS = Histogram(
    "campushub_slurm_queue_wait_seconds",
    "From sbatch until Slurm started the job, for jobs that started",
    ["partition"],
    buckets=BUCKETS,
)

#: every CampusProfilesSpawner that has a child (started, or restored at the hub's start)
SPAWNERS: weakref.WeakSet = weakref.WeakSet()
#: spawner -> when its server that ended (and was counted) had started: two polls at once count it once
COUNTED_ENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: slug -> backend of the site's profiles (:func:`declare`)
PROFILES: dict[str, str] = {}


class ActiveUsers:
    """``campushub_active_users``: users with a ready server now, by profile; counted at each scrape."""

    def collect(self):
        family = GaugeMetricFamily(
            "campushub_active_users",
            "Users whose server is ready now, by profile and backend (JupyterHub's jupyterhub_active_users counts"
            " activity over 24h/7d/30d)",
            labels=["profile", "backend"],
        )
        users = {slug: set() for slug in PROFILES}
        for spawner in list(SPAWNERS):
            try:
                if spawner.ready:
                    users.setdefault(spawner.child_profile, set()).add(spawner.user.name)
            except Exception:  # noqa: BLE001 (a spawner being torn down: not counted)
                continue
        for slug, names in users.items():
            family.add_metric([slug, PROFILES.get(slug, "")], len(names))
        yield family


ACTIVE_USERS = ActiveUsers()
REGISTRY.register(ACTIVE_USERS)


def declare(profiles: dict[str, str]):
    """The site's profiles (slug -> backend): their series exist, at zero, before the first start."""
    PROFILES.clear()
    PROFILES.update(profiles)
    for slug, backend in profiles.items():
        START_SECONDS.labels(slug, backend)


def _labels(spawner) -> tuple[str, str]:
    slug = spawner.child_profile or ""
    return slug, spawner.profile_backends.get(slug, "")


def timed_start(start):
    """Decorates a spawner's ``start``: its duration once the server listens (``spawner.listened``), else a
    failure and why."""

    @functools.wraps(start)
    async def timed(spawner):
        began = monotonic()
        spawner.listened = False
        try:
            found = await start(spawner)
        except asyncio.CancelledError:  # JupyterHub's start_timeout ran out (or the start was given up)
            START_FAILURES.labels(*_labels(spawner), "timeout").inc()
            raise
        except Exception as e:
            START_FAILURES.labels(*_labels(spawner), failure_reason(e)).inc()
            raise
        if spawner.listened:
            START_SECONDS.labels(*_labels(spawner)).observe(monotonic() - began)
        else:  # the server ended, or never answered: JupyterHub fails the start next
            START_FAILURES.labels(*_labels(spawner), "not-listening").inc()
        return found

    return timed


def failure_reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None)  # SpawnException's, such as slurm-never-runs
    if isinstance(reason, str) and reason:
        return reason[:40]
    return "timeout" if isinstance(error, TimeoutError) else type(error).__name__


def session_ended(spawner, ended: dict):
    """A server that ended by itself, noticed by a poll: how, as its backend recorded it; once per server."""
    started = spawner.orm_spawner.started if spawner.orm_spawner is not None else None
    if spawner in COUNTED_ENDS and COUNTED_ENDS[spawner] == started:
        return
    COUNTED_ENDS[spawner] = started
    SESSIONS_ENDED.labels(*_labels(spawner), ended.get("state") or "exited").inc()


def queue_waited(job, submitted: datetime.datetime):
    """A Slurm job runs: from ``submitted`` (the hub's clock) to its start as squeue says (a ``JobInfo``)."""
    if job is not None and job.start is not None:
        QUEUE_WAIT_SECONDS.labels(job.partition).observe(max(0.0, (job.start - submitted).total_seconds()))
