"""The hub's database: its URL (the password from a secret source, never from the file), its kind,
and its schema revision against the one this JupyterHub needs."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from ..sitefile.errors import StartError
from ..sitefile.fields import read_secret
from ..sitefile.model import Site
from . import state

SQLITE_FILE = "jupyterhub.sqlite"
#: the driver campushub installs for PostgreSQL (the ``postgres`` extra): psycopg 3
POSTGRES_DRIVER = "postgresql+psycopg"


def url(site: Site) -> URL:
    """The SQLAlchemy URL the hub uses: ``hub.db_url`` with ``hub.db_password``, else SQLite in ``state_dir``."""
    settings = site.hub
    if not settings.db_url:
        return make_url(f"sqlite:///{settings.state_dir / SQLITE_FILE}")
    found = make_url(settings.db_url)
    if found.drivername in ("postgresql", "postgres"):
        found = found.set(drivername=POSTGRES_DRIVER)
    if settings.db_password:
        found = found.set(password=read_secret(settings.db_password, "hub.db_password"))
    return found


def url_text(site: Site) -> str:
    """:func:`url` as the text JupyterHub's ``db_url`` takes (with the password: never print it)."""
    return url(site).render_as_string(hide_password=False)


def sqlite_file(site: Site) -> Path | None:
    """The SQLite database's file; None for a database server."""
    found = url(site)
    return Path(found.database or "") if found.get_backend_name() == "sqlite" else None


def failure(site: Site, error: Exception) -> str:
    """Why the database cannot be read, in one line: the driver's words when there are some."""
    return f"hub.db_url: cannot read {shown(site)}: {reason(error)}"


def reason(error: Exception) -> str:
    """A database error in one line: the driver's words when there are some."""
    return str(getattr(error, "orig", None) or error).splitlines()[0]


def prepare(site: Site):
    """In the hub's process: make an SQLite database's file private (0600) before JupyterHub creates it, and its
    commits quick (:func:`_quick_commits`)."""
    path = sqlite_file(site)
    if path:
        state.private_file(path)
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        if not event.contains(Engine, "connect", _quick_commits):
            event.listen(Engine, "connect", _quick_commits)


def _quick_commits(connection, _record):
    """SQLite in write-ahead-log mode, synced at checkpoints rather than at every commit: a sign-in's commits cost
    less (docs/benchmarks.md), and a crash of the hub loses nothing; a power cut may lose the last commits. The log
    and its index (``-wal``, ``-shm``) take the database's 0600; backups read through SQLite's backup API."""
    if type(connection).__module__.startswith("sqlite3"):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def kind(site: Site) -> str:
    """``sqlite`` or ``postgresql`` (or another SQLAlchemy backend's name)."""
    return url(site).get_backend_name()


def shown(site: Site) -> str:
    """The database, for messages: its URL without the password."""
    return url(site).render_as_string(hide_password=True)


def libpq(site: Site) -> tuple[list[str], dict[str, str]]:
    """``--dbname`` arguments and environment (the password) for PostgreSQL's programs (pg_dump, psql)."""
    found = url(site)
    env = {**os.environ}
    if found.password:
        env["PGPASSWORD"] = found.password
    plain = URL.create("postgresql", found.username, None, found.host, found.port, found.database, found.query)
    return ["--dbname", plain.render_as_string(hide_password=False)], env


def alembic_script():
    """JupyterHub's own migrations (what ``jupyterhub upgrade-db`` applies)."""
    import jupyterhub
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(jupyterhub.__file__).parent / "alembic"))
    return ScriptDirectory.from_config(config)


def head() -> str:
    """The schema revision this JupyterHub needs."""
    return alembic_script().get_current_head()


def revision(site: Site, wait: float = 0) -> str | None:
    """The database's schema revision; None for a new (empty) database.

    ``wait``: seconds to wait for a database server that refuses connections (one starting beside
    the hub, as compose starts them), saying so once.
    """
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    path = sqlite_file(site)
    if path and (not path.exists() or not path.stat().st_size):
        return None
    deadline, told = time.monotonic() + wait, False
    while True:
        engine = create_engine(url(site))
        try:
            with engine.connect() as connection:
                if "alembic_version" not in inspect(connection).get_table_names():
                    return None
                return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except OperationalError as e:
            said = str(getattr(e, "orig", e))
            starting = any(words in said for words in ("Connection refused", "No route to host", "starting up"))
            if not starting or time.monotonic() >= deadline:
                raise StartError([failure(site, e)]) from None
            if not told:
                print(f"campushub: waiting for the database ({shown(site)}) to start", file=sys.stderr, flush=True)
                told = True
            time.sleep(1)
        except SQLAlchemyError as e:
            raise StartError([failure(site, e)]) from None
        finally:
            engine.dispose()


def migrations(before: str | None, after: str) -> list[str]:
    """``revision: what it changes`` for each migration from ``before`` to ``after``, oldest first."""
    script = alembic_script()
    steps = list(script.iterate_revisions(after, before))
    return [f"{step.revision}: {(step.doc or '').strip() or 'no description'}" for step in reversed(steps)]


def schema_problems(site: Site, wait: float = 0) -> list[str]:
    """The database was written by an older JupyterHub (or its sessions ledger by an older campushub): ``campushub
    up`` must not start on it."""
    from ..ledger import store  # it reads the database through this module

    current, needed = revision(site, wait), head()
    if current is None:
        return []
    if current == needed:
        return store.problems(site) if site.ledger.enabled else []
    where = "hub.db_url" if site.hub.db_url else "hub.state_dir"
    return [
        f"{where}: the database ({shown(site)}) has JupyterHub's schema {current}, this JupyterHub needs"
        f" {needed}: run `campushub upgrade` first (it backs the database up, then migrates it)"
    ]
