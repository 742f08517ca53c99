"""Indexes JupyterHub's tables lack: on the foreign keys its queries find a user's servers and tokens by.

JupyterHub indexes no foreign key of its tables, and neither SQLite nor PostgreSQL makes such an index by itself,
so every query by one of them reads the whole table (jupyterhub/jupyterhub#4485): a user's servers by
``spawners.user_id`` (the users API joins them to every user it lists, and jupyterhub-idle-culler's query joins
users to their running servers on every page it asks for), a server's spawner by ``spawners.server_id``, a user's
tokens by ``api_tokens.user_id``.

:func:`prepare` adds the indexes to JupyterHub's tables in the hub's process, so that a new database is made with
them, and adds those an existing database lacks (:func:`create_missing`) as the hub starts. Their names start with
``campushub_ix_``, apart from JupyterHub's own; JupyterHub's migrations from 5.x to this version keep them
(tests/services/test_upgrade.py). :func:`missing` is also what ``campushub doctor`` asks.
"""

from __future__ import annotations

from sqlalchemy import Index, create_engine, inspect
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from ..ops import database
from ..sitefile.model import Site

#: (table, column) of every index campushub adds
COLUMNS = (("spawners", "user_id"), ("spawners", "server_id"), ("api_tokens", "user_id"))
PREFIX = "campushub_ix_"


def name(table: str, column: str) -> str:
    """The name of campushub's index on ``table.column``."""
    return f"{PREFIX}{table}_{column}"


def indexes() -> list[Index]:
    """The indexes, on JupyterHub's own table objects (made once: an index belongs to its table)."""
    from jupyterhub.orm import Base

    tables = Base.metadata.tables
    found = {index.name: index for table, _ in COLUMNS for index in tables[table].indexes}
    return [
        found.get(name(table, column)) or Index(name(table, column), tables[table].c[column])
        for table, column in COLUMNS
    ]


def prepare(site: Site) -> list[str]:
    """In the hub's process, as it starts: a database JupyterHub makes from now on is made with the indexes, and the
    site's database gets those it lacks. What was done, for the log. A database that refuses them (a role without the
    right to make indexes) is said and left as it is: the hub works without them."""
    indexes()
    try:
        return [f"added the index {name} to the hub's database" for name in create_missing(database.url(site))]
    except SQLAlchemyError as e:
        said = database.reason(e)
        return [f"could not add campushub's indexes to the hub's database ({said}); the hub works without them"]


def create_missing(url: URL) -> list[str]:
    """Add to an existing database the indexes it lacks; the names of those added. A new (empty) database is left
    to JupyterHub, which makes them with its tables."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            added = missing(connection)
            for index in added:
                index.create(connection)
    finally:
        engine.dispose()
    return [str(index.name) for index in added]


def missing(connection) -> list[Index]:
    """The indexes a database's JupyterHub tables lack (none while it has no tables)."""
    found = inspect(connection)
    present = set(found.get_table_names())
    return [
        index
        for index in indexes()
        if index.table is not None
        and index.table.name in present
        and index.name not in {i["name"] for i in found.get_indexes(index.table.name)}
    ]
