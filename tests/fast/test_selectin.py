"""Select-in loads of relations already loaded are answered without a query, and with what SQLAlchemy would have
kept (campushub.hub.selectin), on JupyterHub's own models in an SQLite file."""

from contextlib import contextmanager

import pytest
from jupyterhub import orm
from sqlalchemy import event
from sqlalchemy.orm import Session, selectinload

from campushub.hub import selectin


def _turn(on: bool):
    if on:
        selectin.skip_loaded()
    elif event.contains(Session, "do_orm_execute", selectin._answer_loaded):
        event.remove(Session, "do_orm_execute", selectin._answer_loaded)


@contextmanager
def skip(on: bool):
    """The skip on or off, then as it was (a test of the hub's install turns it on)."""
    was = event.contains(Session, "do_orm_execute", selectin._answer_loaded)
    _turn(on)
    try:
        yield
    finally:
        _turn(was)


@pytest.fixture
def skipping():
    with skip(True):
        yield


def three_users(folder) -> tuple:
    """Two sessions on one new database, as the hub and another writer (an admin's CLI) have, and a list the first
    one's queries are written to."""
    url = f"sqlite:///{folder / 'jupyterhub.sqlite'}"
    db = orm.new_session_factory(url)()
    group, role = orm.Group(name="physics"), orm.Role(name="course-staff")
    db.add_all([orm.User(name=f"ada{i}", cookie_id=f"cookie{i}", groups=[group], roles=[role]) for i in range(3)])
    db.commit()
    db.expunge_all()  # as a hub starts: nothing loaded
    queries = []
    event.listen(db.get_bind(), "before_cursor_execute", lambda *args: queries.append(args[2]))
    return db, orm.new_session_factory(url)(), queries


@pytest.fixture
def hub_db(tmp_path):
    db, other, queries = three_users(tmp_path)
    yield db, other, queries
    db.close()
    other.close()


def by_cookie(db, cookie):
    """How JupyterHub finds the user a cookie names, on every request it signs."""
    return db.query(orm.User).filter(orm.User.cookie_id == cookie).first()


def seen(user) -> tuple:
    return (
        sorted(r.name for r in user.roles),
        sorted(g.name for g in user.groups),
        sorted(r.name for g in user.groups for r in g.roles),
        list(user.shared_with_me),
    )


def lookups(db, other, queries) -> list:
    """A run of lookups and of changes made beside them; what each lookup saw and how many queries it took."""
    found, held = [], []  # the hub holds the users it has found (JupyterHub's UserDict); the session alone would not

    def look(cookie, **options):
        queries.clear()
        query = db.query(orm.User).filter(orm.User.cookie_id == cookie)
        held.append((query.populate_existing() if options.get("fresh") else query).first())
        found.append((cookie, seen(held[-1]), len(queries)))

    look("cookie0")  # first time: everything loads
    look("cookie0")  # loaded: nothing new to load
    other.add(orm.Role(name="graders"))
    other.commit()
    graders = other.query(orm.Role).filter_by(name="graders").one()
    ada0 = other.query(orm.User).filter_by(name="ada0").one()
    ada0.roles.append(graders)
    other.commit()
    look("cookie0")  # another session's change: not seen until the hub's session reloads, as before
    look("cookie0", fresh=True)  # populate_existing reloads it
    db.expire(by_cookie(db, "cookie1"))
    look("cookie1")  # expired: reloads
    look("cookie2")
    return found


def test_a_held_user_is_found_in_one_query_with_what_it_had(hub_db, skipping):
    db, _other, queries = hub_db
    first = by_cookie(db, "cookie0")
    before = seen(first)
    queries.clear()
    again = by_cookie(db, "cookie0")
    assert again is first and seen(again) == before == (["course-staff"], ["physics"], [], [])
    assert len(queries) == 1, queries  # the user's row; no select-in query for its roles, groups, shares


def test_the_hub_sees_what_it_saw_without_the_skip(tmp_path, hub_db):
    """The same lookups and changes, with and without the skip: the same users, roles and groups every time; only
    loads of what was loaded already are left out."""
    with skip(False):
        without = lookups(*hub_db)
    (tmp_path / "twin").mkdir()
    db, other, queries = three_users(tmp_path / "twin")
    with skip(True):
        with_skip = lookups(db, other, queries)
    db.close()
    other.close()

    assert [(c, s) for c, s, _ in with_skip] == [(c, s) for c, s, _ in without]
    assert without[2][1][0] == ["course-staff"] and without[3][1][0] == ["course-staff", "graders"]
    first, held, changed, fresh, expired, new = zip(
        [n for _, _, n in without], [n for _, _, n in with_skip], strict=True
    )  # each: (queries without the skip, with it)
    assert first[1] == first[0] and fresh[1] == fresh[0]  # nothing loaded yet, populate_existing: every query
    assert held[1] == changed[1] == 1 < held[0]  # held with its relations: the user's row alone
    assert 1 < expired[1] < expired[0] and 1 < new[1] < new[0]  # its own relations load; its group's, held, do not


def test_a_list_of_users_loads_only_those_not_loaded(hub_db, skipping):
    """The user list's explicit select-in loads (as JupyterHub's API asks) still load users new to the session."""
    db, _other, queries = hub_db
    by_cookie(db, "cookie0")
    held = by_cookie(db, "cookie1")
    db.expunge(by_cookie(db, "cookie2"))
    queries.clear()
    users = db.query(orm.User).options(selectinload(orm.User.roles), selectinload(orm.User.groups)).all()
    assert [seen(u)[:2] for u in users] == [(["course-staff"], ["physics"])] * 3
    assert len(queries) > 1  # ada2 was not loaded: its relations were
    queries.clear()
    again = db.query(orm.User).options(selectinload(orm.User.roles), selectinload(orm.User.groups)).all()
    assert again == users and held in users and len(queries) == 1, queries
