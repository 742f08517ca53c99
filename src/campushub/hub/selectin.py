"""The hub's select-in loads: no query for relations its session has already loaded.

JupyterHub's users load their roles, groups and shares (and a group its roles and shares) with SQLAlchemy's
select-in loader, and every request a cookie signs finds its user again. SQLAlchemy then runs each select-in query
even when the user is already in the session with those relations loaded, and throws the rows away: an object
already loaded is not overwritten unless ``populate_existing`` asks for it. That was six queries per request, 28% of
the hub's busy time under a burst of sign-ins (docs/benchmarks.md).

:func:`skip_loaded` answers such a query with no rows, without running it, when every object it would load for has
the relation loaded already and the load does not overwrite: what SQLAlchemy would have kept is what it keeps. A
relation not loaded yet, an object not in the session, ``populate_existing`` or a many-to-one relation (whose
query is keyed by the related objects, not by these) runs the query as before.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import IteratorResult
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.orm import Mapper, ORMExecuteState, RelationshipProperty, Session
from sqlalchemy.orm.attributes import instance_dict
from sqlalchemy.orm.interfaces import MANYTOONE


def skip_loaded():
    """In the hub's process: answer select-in loads of relations already loaded without a query."""
    if not event.contains(Session, "do_orm_execute", _answer_loaded):
        event.listen(Session, "do_orm_execute", _answer_loaded)


def _answer_loaded(orm_state: ORMExecuteState):
    """No rows, for a select-in load whose objects all have the relation loaded; None (run it) otherwise."""
    params = orm_state.parameters  # every ORM query of the hub comes here: the cheap look first
    keys = params.get("primary_keys") if isinstance(params, dict) else None
    if not keys or not orm_state.is_relationship_load or orm_state.execution_options.get("populate_existing"):
        return None
    path = orm_state.loader_strategy_path
    if path is None:
        return None
    *_, parent, relation = path.path
    if not isinstance(parent, Mapper) or not isinstance(relation, RelationshipProperty):
        return None
    if relation.direction is MANYTOONE:
        return None
    loaded = orm_state.session.identity_map
    for key in keys:
        found = loaded.get(parent.identity_key_from_primary_key(key if isinstance(key, tuple) else (key,)))
        if found is None or relation.key not in instance_dict(found):
            return None
    return IteratorResult(SimpleResultMetaData([]), iter(()))
