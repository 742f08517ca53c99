"""The indexes campushub adds to JupyterHub's tables: made with a new database, added to one that lacks them, and
used by the queries they are for."""

from __future__ import annotations

import sqlite3

import yaml
from jupyterhub import orm
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import joinedload

from campushub.hub import indexes
from campushub.ops import doctor
from campushub.sitefile.read import load_site
from harness import EMBEDDED, free_port

ADDED = {"campushub_ix_spawners_user_id", "campushub_ix_spawners_server_id", "campushub_ix_api_tokens_user_id"}


def site(tmp_path, hub: dict):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({**EMBEDDED, "hub": {"state_dir": "state", **hub}}))
    return load_site(path)


def names(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def culler_plan(db) -> list[str]:
    """SQLite's plan for jupyterhub-idle-culler's page of users (``GET /hub/api/users?state=ready``), as JupyterHub's
    handler builds it."""
    query = (
        db.query(orm.User)
        .join(orm.Spawner, orm.User._orm_spawners)
        .filter(orm.Spawner.server != None)  # noqa: E711 (SQLAlchemy's IS NOT NULL)
        .group_by(orm.User.id)
        .options(joinedload(orm.User._orm_spawners).joinedload(orm.Spawner.user))
        .order_by(orm.User.id)
        .limit(50)
    )
    sql = str(query.statement.compile(db.get_bind(), compile_kwargs={"literal_binds": True}))
    return [row[-1] for row in db.execute(text("EXPLAIN QUERY PLAN " + sql))]


def test_a_new_database_is_made_with_them_and_one_that_lacks_them_gets_them_as_the_hub_starts(tmp_path):
    (tmp_path / "state").mkdir()
    path = tmp_path / "state" / "jupyterhub.sqlite"
    assert indexes.prepare(site(tmp_path, {})) == []  # no database yet: JupyterHub makes it, with them
    assert indexes.prepare(site(tmp_path, {})) == []  # the hub's config may be read twice: one index of each
    orm.new_session_factory(f"sqlite:///{path}")  # as JupyterHub makes its database
    assert names(path) >= ADDED
    assert indexes.create_missing(make_url(f"sqlite:///{path}")) == []

    with sqlite3.connect(path) as db:
        db.execute("DROP INDEX campushub_ix_spawners_user_id")
        db.execute("DROP INDEX campushub_ix_api_tokens_user_id")
    assert sorted(indexes.prepare(site(tmp_path, {}))) == [
        "added the index campushub_ix_api_tokens_user_id to the hub's database",
        "added the index campushub_ix_spawners_user_id to the hub's database",
    ]
    assert names(path) >= ADDED


def test_a_database_that_refuses_them_is_said_and_the_hub_goes_on(tmp_path):
    unreachable = site(tmp_path, {"db_url": f"postgresql://hub@127.0.0.1:{free_port()}/hub"})
    (line,) = indexes.prepare(unreachable)
    assert line.startswith("could not add campushub's indexes to the hub's database (connection failed"), line
    assert line.endswith("the hub works without them")


def test_the_cullers_query_finds_each_users_servers_by_index_not_by_reading_the_table(tmp_path):
    path = tmp_path / "jupyterhub.sqlite"
    indexes.indexes()
    db = orm.new_session_factory(f"sqlite:///{path}")()
    assert "SEARCH spawners USING INDEX campushub_ix_spawners_user_id (user_id=?)" in culler_plan(db)
    db.close()

    with sqlite3.connect(path) as plain:
        plain.execute("DROP INDEX campushub_ix_spawners_user_id")
    db = orm.new_session_factory(f"sqlite:///{path}")()
    assert not any("campushub_ix_spawners_user_id" in step for step in culler_plan(db))  # the check above can fail


def test_doctor_names_the_indexes_a_database_lacks(tmp_path):
    (tmp_path / "state").mkdir()
    path = tmp_path / "state" / "jupyterhub.sqlite"
    checked = site(tmp_path, {})
    assert doctor.index_findings(checked) == [] and not path.exists()  # no database yet, and none made
    indexes.prepare(checked)
    orm.new_session_factory(f"sqlite:///{path}")
    assert doctor.index_findings(checked) == []
    with sqlite3.connect(path) as db:
        db.execute("DROP INDEX campushub_ix_spawners_server_id")
        db.execute("DROP INDEX campushub_ix_api_tokens_user_id")
    (finding,) = doctor.index_findings(checked)
    assert finding.startswith(
        "hub.db_url: the hub's database has no index on spawners.server_id, api_tokens.user_id: the users list"
    ), finding
    assert doctor.index_findings(site(tmp_path, {"db_url": f"postgresql://hub@127.0.0.1:{free_port()}/hub"})) == []
