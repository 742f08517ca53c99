"""The hub writes the ledger as sessions happen, through its own database session (no second connection to lock
SQLite against): a row when a start is asked for, then when the server started, when it answered, and when it
ended and why. A failure to write is logged and never fails the start or the stop."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import case, func, insert, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import object_session

from .tables import SESSION_GROUPS, SESSIONS

#: how a session ended: the short code a report groups by, and its words
OUTCOMES = {
    "user": "stopped by the user",
    "admin": "stopped by an admin",
    "culled": "stopped by the idle culler",
    "time-limit": "reached its time limit",
    "out-of-memory": "ran out of memory",
    "node-failed": "its node failed",
    "ended": "ended by itself",
    "failed": "failed to start",
    "hub-stopped": "stopped with the hub",
    "gone": "the hub stopped; the server was found gone",
}
#: a backend's state of a server that ended by itself (Slurm's job state, the container's) -> outcome
STATE_OUTCOMES = {
    "TIMEOUT": "time-limit",
    "OUT_OF_MEMORY": "out-of-memory",
    "OOMKilled": "out-of-memory",
    "NODE_FAIL": "node-failed",
}
FOUND_RUNNING = "the hub stopped; the server was found running"
#: where a child spawner's ``usage_facts()`` may say where its server ran and what it had beyond CPUs and memory
FACTS = ("host", "container", "job_id", "cluster", "account", "partition", "gpus", "time_limit_minutes")


def _write(spawner, statement):
    """Run ``statement`` in the hub's session and commit; None (and a warning in the log) if the database refused."""
    session = object_session(spawner.orm_spawner) if spawner.orm_spawner is not None else None
    if session is None:
        return None
    try:
        result = session.execute(statement)
        session.commit()
        return result
    except SQLAlchemyError as e:
        session.rollback()
        spawner.log.warning("The sessions ledger could not record %s's session: %s", spawner.user.name, e)
        return None


def asked(spawner, profile: str, backend: str, shown: dict) -> int | None:
    """A start was asked for: a new row with the user's groups now and what they chose; its id."""
    choices = {k: v for k, v in shown.items() if k != "profile"}
    row = {
        "user": spawner.user.name,
        "server": spawner.name or "",
        "profile": profile,
        "backend": backend,
        "choices": json.dumps(choices, sort_keys=True, default=str)[:4000],
        "asked": time.time(),
    }  # the other columns take their defaults (tables.py)
    result = _write(spawner, insert(SESSIONS).values(**row))
    if result is None:
        return None
    session_id = result.inserted_primary_key[0]
    groups = sorted({g.name for g in spawner.user.groups})
    if groups:
        _write(spawner, insert(SESSION_GROUPS).values([{"session_id": session_id, "name": g} for g in groups]))
    return session_id


def started(spawner, session_id: int | None, child):
    """The backend started the server (a process, a container, a running job): what it has and where it runs."""
    if session_id is None:
        return
    facts = child.usage_facts() if hasattr(child, "usage_facts") else {}
    values = {k: v for k, v in facts.items() if k in FACTS and v not in (None, "")}
    values["cpus"] = float(child.cpu_limit) if child.cpu_limit else None
    values["memory_bytes"] = float(child.mem_limit) if child.mem_limit else None
    _write(spawner, update(SESSIONS).where(SESSIONS.c.id == session_id).values(started=time.time(), **values))


def ready(spawner, session_id: int | None):
    """The server answered."""
    if session_id is not None:
        _write(spawner, update(SESSIONS).where(SESSIONS.c.id == session_id).values(ready=time.time()))


def ended(spawner, session_id: int | None, outcome: str, words: str = "", when: float | None = None):
    """The session ended (once: a second end of the same row changes nothing)."""
    if session_id is None:
        return
    ended_at: Any = time.time()
    if when is not None:  # a time known afterwards (the last activity): never before the session's last step
        last = func.coalesce(SESSIONS.c.ready, SESSIONS.c.started, SESSIONS.c.asked)
        ended_at = case((last > when, last), else_=when)
    values = {"ended": ended_at, "outcome": outcome, "words": (words or OUTCOMES[outcome])[:2000]}
    _write(spawner, update(SESSIONS).where(SESSIONS.c.id == session_id, SESSIONS.c.ended.is_(None)).values(**values))


def noted(spawner, session_id: int | None, note: str):
    if session_id is not None:
        _write(spawner, update(SESSIONS).where(SESSIONS.c.id == session_id).values(notes=note[:2000]))


def accounted(spawner, session_id: int | None, found: dict):
    """Slurm's accounting of the ended job (``sacct``): its state, elapsed seconds and CPU seconds."""
    if session_id is not None and found:
        _write(spawner, update(SESSIONS).where(SESSIONS.c.id == session_id).values(**found))


def outcome_of(end: dict) -> str:
    """The outcome of a server that ended by itself, from what its backend said (``end_reason``)."""
    return STATE_OUTCOMES.get(str(end.get("state", "")), "ended")
