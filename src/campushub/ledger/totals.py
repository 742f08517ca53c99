"""The ledger's totals as Prometheus series beside campushub's others (by profile and backend, never by user):
sessions, failed starts, hours and CPU-hours of the sessions the ledger holds. Read at most once a minute; every
profile of the site has its series from the start, at zero."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import case, create_engine, func, select

from ..hub import metrics
from .tables import SESSIONS

#: seconds between two reads of the ledger (scrapes in between get the last figures)
EVERY = 60
SERIES = {
    "sessions": "Sessions in the ledger that started (a failed start is not one), by profile and backend",
    "failed_starts": "Starts in the ledger that failed, by profile and backend",
    "hours": "Hours of the sessions in the ledger (to now for running ones), by profile and backend",
    "cpu_hours": "CPU-hours (hours times the CPUs each had) of the sessions in the ledger, by profile and backend",
}


def _query(now: float):
    failed = SESSIONS.c.outcome == "failed"
    began = func.coalesce(SESSIONS.c.ready, SESSIONS.c.started)
    seconds = func.coalesce(SESSIONS.c.slurm_elapsed, func.coalesce(SESSIONS.c.ended, now) - began)
    hours = case((failed, 0.0), (began.is_(None), 0.0), else_=seconds / 3600.0)
    return select(
        SESSIONS.c.profile,
        SESSIONS.c.backend,
        func.sum(case((failed, 0), else_=1)),
        func.sum(case((failed, 1), else_=0)),
        func.coalesce(func.sum(hours), 0.0),
        func.coalesce(func.sum(hours * func.coalesce(SESSIONS.c.cpus, 0.0)), 0.0),
    ).group_by(SESSIONS.c.profile, SESSIONS.c.backend)


class LedgerTotals:
    """A Prometheus collector over the ledger's table."""

    def __init__(self):
        self.url = ""
        self.read_at = -EVERY
        self.rows: list = []

    def collect(self):
        if self.url and time.monotonic() - self.read_at >= EVERY:
            engine = create_engine(self.url)
            try:
                with engine.connect() as connection:
                    self.rows = connection.execute(_query(time.time())).all()
            finally:
                engine.dispose()
            self.read_at = time.monotonic()
        families = {
            name: GaugeMetricFamily(f"campushub_ledger_{name}", text, labels=["profile", "backend"])
            for name, text in SERIES.items()
        }
        found = {(profile, backend): values for profile, backend, *values in self.rows}
        for slug, backend in metrics.PROFILES.items():  # the site's profiles, at zero before their first session
            found.setdefault((slug, backend), [0] * len(families))
        for (profile, backend), values in found.items():
            for family, value in zip(families.values(), values, strict=True):
                family.add_metric([profile, backend], float(value or 0))
        yield from families.values()


TOTALS = LedgerTotals()
REGISTRY.register(TOTALS)  # its series exist (empty) from the start, as campushub's others


def register(url) -> None:
    """Serve the totals of the ledger in the database at ``url``."""
    TOTALS.url, TOTALS.read_at = url.render_as_string(hide_password=False), -EVERY
