"""The database side of the users API on a large hub, without and with the indexes campushub adds.

A benchmark, not a test: it makes a JupyterHub database (SQLite, JupyterHub's own models) of --users users, one
server each, every tenth running, with three tokens each, and times the queries JupyterHub's users API runs for a
page of 50 users (its query, then its count): the admin page's list (``list``) and jupyterhub-idle-culler's ready
users (``culler``). The rounds take turns, without the indexes (``before``) and with them (``after``), on the
same database; a query that fails is counted with its reason, not fatal.

    .venv/bin/python benchmarks/hub_queries.py --users 1000,10000

What it leaves out: the API's handler around the queries (its models of each user and the JSON), which
``hub_api.py`` times through a real hub.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from jupyterhub import orm
from sqlalchemy.engine import make_url
from sqlalchemy.orm import joinedload, selectinload

from campushub.hub import indexes

PAGE = 50


def make(path: Path, users: int):
    db = orm.new_session_factory(f"sqlite:///{path}")()
    for i in range(users):
        user = orm.User(name=f"user{i:05d}")
        spawner = orm.Spawner(user=user, name="")
        if i % 10 == 0:
            spawner.server = orm.Server(port=20000 + i % 40000)
        db.add_all([user, spawner, *(orm.APIToken(user=user, token=f"t{i}-{k}-{'x' * 24}") for k in range(3))])
    db.commit()
    db.close()


def page(db, culler: bool, offset: int):
    """One page as JupyterHub's ``UserListAPIHandler`` asks for it: the users, then the count."""
    query = db.query(orm.User)
    if culler:
        query = query.join(orm.Spawner, orm.User._orm_spawners).filter(orm.Spawner.server != None)  # noqa: E711
        query = query.group_by(orm.User.id)
    query = query.options(
        selectinload(orm.User.roles),
        selectinload(orm.User.groups),
        joinedload(orm.User._orm_spawners).joinedload(orm.Spawner.user),
    )
    query.order_by(orm.User.id).offset(offset).limit(PAGE).all()
    query.count()


def rounds(path: Path, users: int, calls: int, turns: int) -> dict:
    times: dict[str, list[float]] = {
        f"{state} {call}": [] for state in ("before", "after") for call in ("list", "culler")
    }
    failures: Counter = Counter()
    for _turn in range(turns):
        for state in ("before", "after"):
            with sqlite3.connect(path) as plain:
                for table, column in indexes.COLUMNS:
                    plain.execute(f"DROP INDEX IF EXISTS {indexes.name(table, column)}")
            if state == "after":
                indexes.create_missing(make_url(f"sqlite:///{path}"))
            db = orm.new_session_factory(f"sqlite:///{path}")()
            for call in ("list", "culler"):
                pages = max(1, (users // 10 if call == "culler" else users) // PAGE)
                for n in range(calls):
                    start = time.perf_counter()
                    try:
                        page(db, call == "culler", (n % pages) * PAGE)
                    except Exception as e:  # noqa: BLE001 (counted with its reason)
                        failures[f"{state} {call}: {type(e).__name__}: {e}".splitlines()[0][:200]] += 1
                        continue
                    times[f"{state} {call}"].append(time.perf_counter() - start)
            db.close()
    summary = {"users": users}
    for key, values in times.items():
        values.sort()
        summary[key] = {
            "n": len(values),
            "p50_ms": round(1000 * statistics.median(values), 2) if values else None,
            "p95_ms": round(1000 * values[int(0.95 * (len(values) - 1))], 2) if values else None,
        }
    summary["failures"] = dict(failures)
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="1000,10000", help="comma-separated user counts (default 1000,10000)")
    parser.add_argument("--calls", type=int, default=100, help="pages of each call per turn (default 100)")
    parser.add_argument("--turns", type=int, default=2, help="before and after take this many turns (default 2)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hub_queries.json"))
    args = parser.parse_args(argv)
    indexes.indexes()  # on the tables' definitions; each round drops or adds them in the database
    results = []
    for users in (int(n) for n in args.users.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "jupyterhub.sqlite"
            print(f"hub_queries: a database of {users} users ...", flush=True)
            make(path, users)
            summary = rounds(path, users, args.calls, args.turns)
        results.append(summary)
        for call in ("list", "culler"):
            before, after = summary[f"before {call}"], summary[f"after {call}"]
            print(
                f"  users={users:<6} {call:<7} p50 / p95: before {before['p50_ms']} / {before['p95_ms']} ms,"
                f" after {after['p50_ms']} / {after['p95_ms']} ms"
            )
        for reason, count in summary["failures"].items():
            print(f"  failed x{count}: {reason}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
