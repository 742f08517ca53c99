"""campushub's Prometheus series without a hub: the dashboard's queries name only series the hub exports, and
the Slurm queue wait is measured from Slurm's own start time."""

import asyncio
import datetime
import json
import re
from typing import ClassVar

import jupyterhub.metrics  # noqa: F401 (registers JupyterHub's series, as in the hub)
import pytest
from prometheus_client import REGISTRY

from campushub.backends.slurm.jobs import JobInfo
from campushub.hub import metrics
from campushub.ledger import totals  # noqa: F401 (registers the ledger's totals, as in the hub)
from harness import REPO

DASHBOARD = REPO / "dashboards" / "campushub.json"
SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total",), "gauge": ("",)}


def exported() -> set[str]:
    """The series names ``/hub/metrics`` can hold, from the registry the hub serves."""
    names = {"up"}  # Prometheus's own, per target
    for family in REGISTRY.collect():
        names |= {family.name + s for s in SUFFIXES.get(family.type, ("",))}
    return names


def test_the_dashboard_queries_only_series_the_hub_exports():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\b(up|(?:campushub|jupyterhub)_[a-z_]+)\{", e)}
    assert used - exported() == set(), "the dashboard names series the hub does not export"
    # every series of campushub's is on the dashboard
    ours = {f.name for f in REGISTRY.collect() if f.name.startswith("campushub_")}
    assert len(ours) == 9 and {n for n in ours if not any(n in e for e in exprs)} == set()
    assert {"jupyterhub_running_servers", "jupyterhub_active_users"} <= used


def test_queue_wait_is_from_submission_to_slurms_start_time():
    def waits(value):
        return (
            REGISTRY.get_sample_value("campushub_slurm_queue_wait_seconds_bucket", {"partition": "campus", "le": value})
            or 0
        )

    before = (waits("5.0"), waits("10.0"), waits("+Inf"))
    submitted = datetime.datetime(2026, 11, 26, 20, 41, 3)
    running = JobInfo.parse("RUNNING campus 4294901 2026-11-26T20:41:10 59:50 None node1")
    metrics.queue_waited(running, submitted)
    assert (waits("5.0"), waits("10.0")) == (before[0], before[1] + 1)  # 7 s: above 5, within 10
    metrics.queue_waited(JobInfo.parse("RUNNING campus 1 N/A 59:50 None node1"), submitted)  # no start time
    metrics.queue_waited(None, submitted)
    assert waits("+Inf") == before[2] + 1


class Spawner:
    """What :func:`metrics.timed_start` reads of a profiles spawner."""

    child_profile = "gpu"
    profile_backends: ClassVar = {"gpu": "slurm"}
    listened = False


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, {"profile": "gpu", "backend": "slurm", **labels}) or 0


def test_a_start_is_timed_when_it_listens_and_counted_by_reason_when_it_fails():
    from jupyterhub.spawner import SpawnException

    outcomes = iter([None, SpawnException("no node", reason="slurm-never-runs"), "quiet", asyncio.CancelledError()])

    @metrics.timed_start
    async def start(spawner):
        outcome = next(outcomes)
        if isinstance(outcome, BaseException):
            raise outcome
        spawner.listened = outcome is None
        return ("127.0.0.1", 9999)

    def failures(reason):
        return sample("campushub_server_start_failures_total", reason=reason)

    before = [sample("campushub_server_start_seconds_count")] + [
        failures(r) for r in ("slurm-never-runs", "not-listening", "timeout")
    ]
    spawner = Spawner()
    assert asyncio.run(start(spawner)) == ("127.0.0.1", 9999)
    with pytest.raises(SpawnException):
        asyncio.run(start(spawner))
    asyncio.run(start(spawner))  # returned, but the server never listened
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(start(spawner))
    after = [sample("campushub_server_start_seconds_count")] + [
        failures(r) for r in ("slurm-never-runs", "not-listening", "timeout")
    ]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1]
