"""Usage between two dates from the ledger: sessions, hours, CPU-, GPU- and memory-hours, failed starts and the wait
from asking to ready, grouped by user, group, profile, backend, account, month or day; as a table, CSV or JSON.

A session belongs to the day it was asked for. Hours run from ready (else started) to the end (now for a session
still running), or Slurm's elapsed time once sacct has it; CPU-, GPU- and memory-hours are those hours times what
the session had. By group, a session counts once in each group its user was in when it was asked for.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import statistics
import time
from dataclasses import dataclass, field

from sqlalchemy import exists, select

from .cells import inert
from .tables import SESSION_GROUPS, SESSIONS

GROUPINGS = ("user", "group", "profile", "backend", "account", "month", "day")
FORMATS = ("table", "csv", "json")
COLUMNS = (
    "sessions",
    "failed_starts",
    "hours",
    "cpu_hours",
    "gpu_hours",
    "memory_gib_hours",
    "median_wait_s",
    "p90_wait_s",
)
GIB = 2**30
#: the longest range a report covers (a wrong year typed is refused rather than read for minutes)
MAX_DAYS = 3660
FIELDS = (
    SESSIONS.c.id,
    SESSIONS.c.user,
    SESSIONS.c.profile,
    SESSIONS.c.backend,
    SESSIONS.c.account,
    SESSIONS.c.asked,
    SESSIONS.c.started,
    SESSIONS.c.ready,
    SESSIONS.c.ended,
    SESSIONS.c.outcome,
    SESSIONS.c.cpus,
    SESSIONS.c.memory_bytes,
    SESSIONS.c.gpus,
    SESSIONS.c.slurm_elapsed,
)


class ReportError(ValueError):
    """A report that cannot be made as asked, in words (the command exits 2 with them)."""


def day(text: str | None, name: str, default: datetime.date) -> datetime.date:
    if text is None:
        return default
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"--{name}: {text[:40]!r} is not a date as YYYY-MM-DD") from None


def date_range(since: str | None, until: str | None, today: datetime.date | None = None) -> tuple:
    """``since`` to ``until`` (both days included, UTC; by default the last 30 days), checked."""
    today = today or datetime.datetime.now(datetime.UTC).date()
    last = day(until, "until", today)
    first = day(since, "since", last - datetime.timedelta(days=29))
    if first > last:
        raise ReportError(f"--since {first} is after --until {last}: the range is the wrong way round")
    if (last - first).days > MAX_DAYS:
        raise ReportError(f"--since {first} to --until {last} is over {MAX_DAYS} days; ask for a shorter range")
    return first, last


def epoch(value: datetime.date) -> float:
    return datetime.datetime.combine(value, datetime.time(), datetime.UTC).timestamp()


@dataclass(slots=True)
class Fact:
    """One session as the report sums it: its keys, and its figures worked out once."""

    id: int
    user: str
    profile: str
    backend: str
    account: str
    day: int  # days since the epoch (UTC) of when it was asked for
    failed: bool
    hours: float
    cpu_hours: float
    gpu_hours: float
    memory_gib_hours: float
    wait: float | None


@dataclass
class Sessions:
    """The ledger's sessions asked for in a range, and their users' groups."""

    facts: list[Fact] = field(default_factory=list)
    groups: dict[int, list[str]] = field(default_factory=dict)
    #: only the sessions of this group's users: by group, only its row
    only: str | None = None

    @classmethod
    def load(cls, connection, first: datetime.date, last: datetime.date, group: str | None = None) -> Sessions:
        start, end = epoch(first), epoch(last + datetime.timedelta(days=1))
        within = (SESSIONS.c.asked >= start) & (SESSIONS.c.asked < end)
        if group is not None:
            _known_group(connection, group)
            member = SESSION_GROUPS.alias()  # its own name: the groups' query below joins the table itself
            within = within & exists().where((member.c.session_id == SESSIONS.c.id) & (member.c.name == group))
        now = time.time()
        facts = [_fact(tuple(row), now) for row in connection.execute(select(*FIELDS).where(within))]
        groups: dict[int, list[str]] = {}
        if facts:
            pairs = select(SESSION_GROUPS.c.session_id, SESSION_GROUPS.c.name).join(
                SESSIONS, SESSIONS.c.id == SESSION_GROUPS.c.session_id
            )
            for session_id, name in connection.execute(pairs.where(within)):
                groups.setdefault(session_id, []).append(name)
        return cls(facts, groups, group)

    def key(self, by: str):
        """The function that gives a fact's keys for a grouping."""
        if by == "all":
            return lambda fact: ("all",)
        if by == "group":
            if self.only is not None:
                return lambda fact: (self.only,)
            return lambda fact: self.groups.get(fact.id) or ("(no group)",)
        if by in ("month", "day"):
            days: dict[int, tuple[str]] = {}
            form = "%Y-%m" if by == "month" else "%Y-%m-%d"

            def of_day(fact):
                if fact.day not in days:
                    days[fact.day] = ((EPOCH + datetime.timedelta(days=fact.day)).strftime(form),)
                return days[fact.day]

            return of_day
        return lambda fact: (getattr(fact, by) or "-",)

    def summary(self, by: str) -> list[dict]:
        """One dict per key (sorted), with :data:`COLUMNS`."""
        keys = self.key(by)
        totals: dict[str, list] = {}
        waits: dict[str, list[float]] = {}
        for fact in self.facts:
            for key in keys(fact):
                found = totals.get(key)
                if found is None:
                    found = totals[key] = [0, 0, 0.0, 0.0, 0.0, 0.0]
                found[1 if fact.failed else 0] += 1
                found[2] += fact.hours
                found[3] += fact.cpu_hours
                found[4] += fact.gpu_hours
                found[5] += fact.memory_gib_hours
                if fact.wait is not None:
                    waits.setdefault(key, []).append(fact.wait)
        return [
            {by: key, **_rounded(dict(zip(COLUMNS[:6], values, strict=True))), **_waits(waits.get(key, []))}
            for key, values in sorted(totals.items())
        ]


EPOCH = datetime.date(1970, 1, 1)


def _fact(row: tuple, now: float) -> Fact:
    """A row of :data:`FIELDS` (unpacked: much faster than a Row's attributes over a semester's sessions)."""
    id_, user, profile, backend, account, asked, started, ready, ended, outcome, cpus, memory, gpus, elapsed = row
    failed = outcome == "failed"
    if failed:
        hours = 0.0
    elif elapsed is not None:
        hours = elapsed / 3600
    else:
        began = ready if ready is not None else started
        hours = 0.0 if began is None else max(0.0, (ended if ended is not None else now) - began) / 3600
    return Fact(
        id_,
        user,
        profile,
        backend,
        account,
        int(asked // 86400),
        failed,
        hours,
        hours * (cpus or 0),
        hours * (gpus or 0),
        hours * (memory or 0) / GIB,
        ready - asked if ready is not None else None,
    )


def _rounded(values: dict) -> dict:
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in values.items()}


def _waits(found: list[float]) -> dict:
    if not found:
        return {"median_wait_s": None, "p90_wait_s": None}
    found.sort()
    return {
        "median_wait_s": round(statistics.median(found), 2),
        "p90_wait_s": round(found[min(len(found) - 1, int(0.9 * len(found)))], 2),
    }


def _known_group(connection, group: str):
    """An unknown group is a typo more often than a group that used nothing: say which groups there are."""
    if connection.execute(select(SESSION_GROUPS.c.name).where(SESSION_GROUPS.c.name == group).limit(1)).first():
        return
    names = connection.execute(select(SESSION_GROUPS.c.name).distinct().order_by(SESSION_GROUPS.c.name).limit(11))
    known = [n for (n,) in names]
    listed = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
    raise ReportError(
        f"--group: no session in the ledger has the group {group[:80]!r}"
        + (f" (groups in the ledger: {listed})" if known else " (the ledger has no groups yet)")
    )


@dataclass
class Report:
    since: datetime.date
    until: datetime.date
    by: str
    rows: list[dict]
    #: every session once (by group, a session is in each of its groups' rows)
    total: dict = field(default_factory=dict)
    group: str | None = None
    #: the sessions it was made from, for other groupings (the admin page's charts)
    sessions: Sessions | None = field(default=None, repr=False)

    @property
    def note(self) -> str:
        where = f" for group {self.group}" if self.group else ""
        return "" if self.rows else f"No sessions{where} were asked for between {self.since} and {self.until}."

    def summary(self, by: str) -> list[dict]:
        """The same sessions grouped by another of :data:`GROUPINGS` (or by ``day``)."""
        return self.sessions.summary(by) if self.sessions else []

    def totals(self) -> dict:
        return {c: self.total.get(c, 0 if c in COLUMNS[:6] else None) for c in COLUMNS}

    def as_json(self) -> str:
        return json.dumps(
            {
                "since": str(self.since),
                "until": str(self.until),
                "by": self.by,
                "group": self.group,
                "rows": self.rows,
                "totals": self.totals(),
                "note": self.note,
            },
            indent=2,
        )

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=[self.by, *COLUMNS], lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: inert(v) for k, v in row.items()} for row in self.rows)
        return out.getvalue()

    def as_table(self) -> str:
        header = f"Usage from {self.since} to {self.until} by {self.by}" + (
            f", group {self.group}" if self.group else ""
        )
        if not self.rows:
            return f"{header}\n{self.note}\n"
        names = [self.by, *COLUMNS]
        cells = [[_cell(r[n]) for n in names] for r in self.rows]
        cells.append(["total", *(_cell(v) for v in self.totals().values())])
        widths = [max(len(n), *(len(c[i]) for c in cells)) for i, n in enumerate(names)]
        lines = [header] + [_aligned(row, widths) for row in [names, *cells]]
        return "\n".join(lines) + "\n"

    def text(self, form: str) -> str:
        return {"table": self.as_table, "csv": self.as_csv, "json": self.as_json}[form]()


def _aligned(cells: list[str], widths: list[int]) -> str:
    """The first cell to the left, the figures to the right."""
    first, *rest = zip(cells, widths, strict=True)
    return "  ".join([first[0].ljust(first[1]), *(c.rjust(w) for c, w in rest)])


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def report(connection, since: str | None, until: str | None, by: str, group: str | None = None) -> Report:
    """The usage report, checked: a grouping it knows, a range the right way round, a group the ledger has."""
    if by not in GROUPINGS:
        raise ReportError(f"--by: {by[:40]!r} is not one of {', '.join(GROUPINGS)}")
    first, last = date_range(since, until)
    sessions = Sessions.load(connection, first, last, group)
    total = sessions.summary("all")
    return Report(first, last, by, sessions.summary(by), total[0] if total else {}, group, sessions)
