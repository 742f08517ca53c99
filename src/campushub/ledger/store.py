"""The ledger's tables in the hub's database: made and migrated (alembic, with a version table of their own), the
rows a killed hub left open closed, and old rows pruned after an export."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, and_, create_engine, delete, inspect, select, text, update

from ..ops import database, state
from ..sitefile.model import Site
from .cells import inert
from .record import OUTCOMES
from .tables import SESSION_GROUPS, SESSIONS

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "campushub_ledger_version"
DAY = 86400
LOG = logging.getLogger("JupyterHub")


def retention(site: Site) -> tuple[int, Path]:
    """How many days sessions are kept (0: for ever), and where the pruned ones are exported."""
    return site.ledger.keep_days, site.ledger.export_dir or site.hub.state_dir / "ledger-exports"


@contextlib.contextmanager
def connected(site: Site, write: bool = False) -> Iterator[Connection]:
    """A connection to the site's database; with ``write``, one transaction, committed when the block ends."""
    found = create_engine(database.url(site))
    try:
        with found.begin() if write else found.connect() as connection:
            yield connection
    finally:
        found.dispose()


def _alembic(connection=None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic()).get_current_head() or ""


def revision(connection) -> str | None:
    """The ledger's revision in this database; None before its first migration."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def migrate(site: Site) -> tuple[str | None, str]:
    """Bring the ledger's tables to this campushub's revision: (the revision before, after)."""
    with connected(site, write=True) as connection:
        before = revision(connection)
        return before, _migrate(connection, before)


def _migrate(connection, before: str | None) -> str:
    from alembic import command

    if before != head():
        command.upgrade(_alembic(connection), "head")
    return revision(connection) or ""


def current(site: Site) -> str | None:
    """The ledger's revision in the site's database; None before its first migration."""
    with connected(site) as connection:
        return revision(connection)


def problems(site: Site) -> list[str]:
    """A ledger at an older revision (made by an older campushub, `campushub upgrade` migrates it), or at one this
    campushub does not know (a newer one made it)."""
    return _problems(site, current(site))


def _problems(site: Site, found: str | None) -> list[str]:
    if found is None or found == head():
        return []
    where = f"ledger: the sessions ledger in {database.shown(site)} is at revision {found}"
    if found not in known():
        return [f"{where}, which this campushub does not know (a newer campushub made it?): use that campushub"]
    return [f"{where}, this campushub needs {head()}: run `campushub upgrade` first"]


def known() -> set[str]:
    """Every revision of the ledger's migrations."""
    from alembic.script import ScriptDirectory

    return {step.revision for step in ScriptDirectory.from_config(_alembic()).walk_revisions()}


def prepare(site: Site) -> list[str]:
    """At the hub's start, in one transaction: the tables made (a new database) or refused (an old one), the rows a
    killed hub left open closed, old rows pruned. What was done, for the log."""
    if not site.ledger.enabled:
        return []
    days, _ = retention(site)
    with connected(site, write=True) as connection:
        before = revision(connection)
        found = _problems(site, before)
        if found:
            from ..sitefile.errors import StartError

            raise StartError(found)
        after = _migrate(connection, before)
        closed = _sweep(connection)
        pruned, export = _prune(connection, site, time.time() - days * DAY) if days else (0, None)
    said = [f"made the sessions ledger (revision {after})"] if before is None else []
    if closed:
        said.append(f"closed {closed} session(s) a stopped hub left open: {OUTCOMES['gone']}")
    if pruned:
        said.append(f"pruned {pruned} session(s) older than {days} days, exported to {export}")
    return said


def sweep(site: Site) -> int:
    """Close the open rows no server of the hub's database refers to: their hub stopped before it could say how they
    ended (the rows of servers it still has are closed, or kept, by the next hub once it polls them)."""
    with connected(site, write=True) as connection:
        return _sweep(connection)


def _sweep(connection) -> int:
    kept = _referenced(connection)
    rows = connection.execute(
        select(SESSIONS.c.id, SESSIONS.c.asked, SESSIONS.c.started, SESSIONS.c.ready).where(SESSIONS.c.ended.is_(None))
    ).all()
    gone = [r for r in rows if r.id not in kept]
    for row in gone:
        last = max(t for t in (row.asked, row.started, row.ready) if t is not None)
        connection.execute(
            update(SESSIONS).where(SESSIONS.c.id == row.id).values(ended=last, outcome="gone", words=OUTCOMES["gone"])
        )
    return len(gone)


def _referenced(connection) -> set[int]:
    """Ledger ids in the saved state of JupyterHub's spawners that have a server."""
    if not inspect(connection).has_table("spawners"):  # a new database: JupyterHub has not made its tables yet
        return set()
    states = connection.execute(text("SELECT state FROM spawners WHERE server_id IS NOT NULL")).scalars().all()
    found = set()
    for saved in states:
        try:
            value = json.loads(saved) if isinstance(saved, str) else saved
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("ledger_id"), int):
            found.add(value["ledger_id"])
    return found


def prune(site: Site, before: float) -> tuple[int, Path | None]:
    """Export the ended sessions asked for before ``before`` (epoch seconds) to a private CSV file, then delete
    them: (how many, the file)."""
    with connected(site, write=True) as connection:
        return _prune(connection, site, before)


def _prune(connection, site: Site, before: float) -> tuple[int, Path | None]:
    old = and_(SESSIONS.c.asked < before, SESSIONS.c.ended.is_not(None))
    rows = connection.execute(select(SESSIONS).where(old).order_by(SESSIONS.c.id)).all()
    if not rows:
        return 0, None
    groups: dict[int, list[str]] = {}
    ids = select(SESSIONS.c.id).where(old)
    for session_id, name in connection.execute(
        select(SESSION_GROUPS.c.session_id, SESSION_GROUPS.c.name).where(SESSION_GROUPS.c.session_id.in_(ids))
    ):
        groups.setdefault(session_id, []).append(name)
    export = _export(site, rows, groups)
    connection.execute(delete(SESSION_GROUPS).where(SESSION_GROUPS.c.session_id.in_(ids)))
    connection.execute(delete(SESSIONS).where(old))
    return len(rows), export


def _export(site: Site, rows, groups: dict[int, list[str]]) -> Path:
    _, folder = retention(site)
    state.prepare(folder)
    day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%M%S")
    path = folder / f"sessions-pruned-{day}.csv"
    columns = [c.name for c in SESSIONS.columns]
    with state.private_file(path).open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*columns, "groups"])
        for row in rows:
            writer.writerow([inert(v) for v in (*row, ";".join(sorted(groups.get(row.id, []))))])
    return path


def prune_daily(site: Site):
    """In the hub's event loop: prune (:func:`prune`) once a day, as ``ledger.keep_days`` says."""
    days, _ = retention(site)
    if not days:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not in the hub's process
        return

    def again():
        try:
            pruned, export = prune(site, time.time() - days * DAY)
            if pruned:
                LOG.info("Pruned %s session(s) from the ledger, exported to %s", pruned, export)
        except Exception as e:  # noqa: BLE001 (tried again tomorrow; the log says why)
            LOG.warning("Could not prune the sessions ledger: %s", e)
        loop.call_later(DAY, again)

    loop.call_later(DAY, again)
