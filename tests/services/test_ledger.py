"""The sessions ledger on real hubs: each session recorded with who stopped it, a failed start, a hub killed under
running servers, Slurm's accounting, `campushub report` on what was recorded, the metrics, and the admins' page in
Chromium."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from campushub.hub import indexes
from campushub.ops import database
from harness import ARTIFACTS, CAMPUSHUB, GROUP, base_site, kill_processes_of
from harness.ledger import fill

ADMIN_GROUPS = f"{GROUP};crc-admins"
LIMITED = {"slug": "local", "name": "On the hub host", "backend": "local", "system_users": True, "default": True}
LIMITED |= {"cpu": 2, "memory": "1G"}
ADDED_INDEXES = [indexes.name(table, column) for table, column in indexes.COLUMNS]


def rows(hub) -> dict[str, list[dict]]:
    """The ledger's rows by user, oldest first, with their groups."""
    with sqlite3.connect(hub.state / "jupyterhub.sqlite") as db:
        db.row_factory = sqlite3.Row
        found: dict[str, list[dict]] = {}
        for row in db.execute("SELECT * FROM campushub_sessions ORDER BY id"):
            groups = db.execute("SELECT name FROM campushub_session_groups WHERE session_id = ?", (row["id"],))
            found.setdefault(row["user"], []).append({**dict(row), "groups": sorted(g for (g,) in groups)})
    return found


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.5)
    return found


def report(hub, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CAMPUSHUB, "report", "--config", str(hub.config), *args], capture_output=True, text=True, env=hub.env
    )


def test_each_session_is_recorded_with_what_it_had_and_who_stopped_it(hub_factory, accounts):
    hub = hub_factory(base_site(profiles=[LIMITED], culler={"enabled": True, "timeout": 10, "every": 5}))
    ann, ben, cy = accounts("chl-ann", "chl-ben", "chl-cy")
    admin = hub.login("chl-root", ADMIN_GROUPS)
    sessions = {user: hub.login(user, f"{GROUP};physics") for user in (ann, ben, cy)}
    for user, session in sessions.items():
        hub.start_server(session, user)
    hub.stop_server(sessions[ann], ann)  # by the user herself
    hub.stop_server(admin, ben)  # by an admin
    wait_for(lambda: not hub.whoami_user(sessions[cy], cy)["servers"], 60, "the culler did not stop cy's server")
    found = rows(hub)
    outcomes = {user: [(r["outcome"], r["words"]) for r in found[user]] for user in (ann, ben, cy)}
    assert outcomes == {
        ann: [("user", "stopped by the user")],
        ben: [("admin", "stopped by an admin")],
        cy: [("culled", "stopped by the idle culler")],
    }
    row = found[ann][0]
    assert row["groups"] == sorted([GROUP, "physics"]) and (row["profile"], row["backend"]) == ("local", "local")
    assert (row["cpus"], row["memory_bytes"], row["host"]) == (2.0, 2.0**30, os.uname().nodename)
    assert row["asked"] <= row["started"] <= row["ready"] <= row["ended"], row
    # what the report makes of them: three sessions of the physics group, by the command line
    result = report(hub, "--by", "group", "--format", "json")
    assert result.returncode == 0, result.stderr
    by_group = {r["group"]: r for r in json.loads(result.stdout)["rows"]}
    assert by_group["physics"]["sessions"] == 3 and by_group["physics"]["failed_starts"] == 0
    assert by_group["physics"]["cpu_hours"] == pytest.approx(2 * by_group["physics"]["hours"], abs=0.02)
    # and Prometheus's totals, without users' names
    metrics = hub.get(admin, "/hub/metrics").text
    line = next(m for m in metrics.splitlines() if m.startswith("campushub_ledger_sessions{"))
    assert line == 'campushub_ledger_sessions{backend="local",profile="local"} 3.0', line


def test_a_start_that_fails_is_a_failed_session_with_its_reason(hub_factory, accounts):
    hub = hub_factory(base_site())
    (dee,) = accounts("chl-dee")
    shutil.rmtree(pwd.getpwnam(dee).pw_dir)  # her account has no home folder: her server cannot start
    session = hub.login(dee)
    r = hub.api(session, "POST", f"users/{dee}/server")
    assert r.status_code >= 400 or r.status_code == 202, r.text
    row = wait_for(lambda: [r for r in rows(hub).get(dee, []) if r["ended"]], 120, "no ended row")[0]
    assert row["outcome"] == "failed" and row["ready"] is None, row
    assert row["words"].startswith("Your server did not start. ") and len(row["words"]) > 30, row["words"]
    result = report(hub, "--by", "user", "--format", "csv")
    assert result.stdout.splitlines()[1].startswith(f"{dee},0,1,0.0,"), result.stdout


def test_a_hub_killed_under_running_servers_leaves_rows_the_next_hub_closes(hub_factory, accounts):
    hub = hub_factory(base_site())
    eve, fay = accounts("chl-eve", "chl-fay")
    sessions = {user: hub.login(user) for user in (eve, fay)}
    for user, session in sessions.items():
        hub.start_server(session, user)
    os.kill(int((hub.state / "hub.pid").read_text()), signal.SIGKILL)
    assert hub.process.wait(60) != 0
    kill_processes_of(fay)  # fay's server dies with the hub; eve's may live on
    assert [r["ended"] for r in rows(hub)[eve] + rows(hub)[fay]] == [None, None]
    hub.start()
    eve_running = bool(hub.whoami_user(hub.login(eve), eve)["servers"])
    found = rows(hub)
    assert (found[fay][0]["outcome"], found[fay][0]["words"]) == ("gone", "the hub stopped; the server was found gone")
    assert found[fay][0]["ended"] >= found[fay][0]["ready"]
    if eve_running:  # found running: the same session goes on, and says what happened
        assert (
            found[eve][0]["ended"] is None and found[eve][0]["notes"] == "the hub stopped; the server was found running"
        )
        hub.stop_server(hub.login(eve), eve)
        assert rows(hub)[eve][0]["outcome"] == "user"
    else:
        assert found[eve][0]["outcome"] == "gone"


def test_a_slurm_session_is_reconciled_with_sacct(slurm_cluster, hub_factory, accounts):
    (gus,) = accounts("chl-gus")
    profile = {"slug": "batch", "name": "Batch", "backend": "slurm", "cpu": 1, "memory": "512M", "runtime": "00:30:00"}
    hub = hub_factory(base_site(slurm={"conf": slurm_cluster}, profiles=[{**profile, "default": True}]))
    session = hub.login(gus)
    hub.start_server(session, gus)
    time.sleep(2)  # sacct counts whole seconds: a job started and cancelled within one would show 0
    hub.stop_server(session, gus)
    row = wait_for(lambda: [r for r in rows(hub)[gus] if r["slurm_state"]], 90, "no accounting from sacct")[0]
    assert row["outcome"] == "user" and row["job_id"].isdigit() and row["partition"] == "campus", row
    assert row["slurm_state"] == "CANCELLED" and 2 <= row["slurm_elapsed"] <= row["ended"] - row["started"] + 1, row
    assert (row["cpus"], row["time_limit_minutes"], row["host"]) == (1.0, 30, os.uname().nodename.split(".")[0])


def test_the_admins_usage_page_draws_its_charts_and_refuses_others(hub_factory, accounts):
    hub = hub_factory(base_site())
    now = time.time()
    fill(f"sqlite:///{hub.state / 'jupyterhub.sqlite'}", 3000, now - 30 * 86400, 30, users=200, groups=8)
    admin = hub.login("chl-boss", ADMIN_GROUPS)
    page = hub.get(admin, "/hub/campushub/usage?by=profile")
    assert page.status_code == 200 and 'href="/hub/campushub/usage"' in page.text  # linked from the navigation
    assert "<td>gpu</td>" in page.text and "Download CSV" in page.text
    csv = hub.get(admin, "/hub/campushub/usage?by=group&format=csv")
    assert csv.headers["Content-Type"].startswith("text/csv") and csv.text.startswith("group,sessions,")
    # words, not tracebacks
    wrong = hub.get(admin, "/hub/campushub/usage?since=2026-12-01&until=2026-11-01")
    assert wrong.status_code == 400 and "the wrong way round" in wrong.text
    unknown = hub.get(admin, "/hub/campushub/usage?group=nosuch")
    assert unknown.status_code == 400 and "no session in the ledger has the group &#39;nosuch&#39;" in unknown.text
    empty = hub.get(admin, "/hub/campushub/usage?since=2020-01-01&until=2020-01-31")
    assert "No sessions were asked for between 2020-01-01 and 2020-01-31." in empty.text
    # users who are not admins get nothing of it, nor a link to it
    user = hub.login("chl-student")
    assert hub.get(user, "/hub/campushub/usage").status_code == 403
    assert "campushub/usage" not in hub.get(user, "/hub/home").text
    hub.screenshot("chl-boss", "/hub/campushub/usage", "usage-page.png", ADMIN_GROUPS, "body[data-charts-drawn=yes]")
    assert (ARTIFACTS / "usage-page.png").stat().st_size > 20_000


def test_the_ledger_works_on_postgresql_from_a_new_database(postgres, hub_factory, accounts):
    env = {"CAMPUSHUB_TEST_DB_PASSWORD": postgres.password}
    hub_settings = {"db_url": postgres.database(), "db_password": {"env": "CAMPUSHUB_TEST_DB_PASSWORD"}}
    hub = hub_factory(base_site(hub=hub_settings), env=env)
    (hal,) = accounts("chl-hal")
    session = hub.login(hal, f"{GROUP};physics")
    hub.start_server(session, hal)
    hub.stop_server(session, hal)
    result = report(hub, "--by", "group", "--group", "physics", "--format", "json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)["rows"]
    assert (row["group"], row["sessions"], row["failed_starts"]) == ("physics", 1, 0)
    admin = hub.login("chl-pg-admin", ADMIN_GROUPS)
    assert "<td>physics</td>" in hub.get(admin, "/hub/campushub/usage").text
    # JupyterHub made its tables with the indexes campushub adds; a hub whose database lacks one adds it as it starts
    database_url = make_url(hub_settings["db_url"]).set(drivername=database.POSTGRES_DRIVER, password=postgres.password)
    assert indexes.create_missing(database_url) == []
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX campushub_ix_spawners_user_id"))
    hub.stop()
    hub.start()  # the next hub finds its ledger made, at its revision
    since_restart = hub.log.read_text().split("campushub: starting JupyterHub")[-1]
    assert "made the sessions ledger" not in since_restart
    assert "campushub: added the index campushub_ix_spawners_user_id to the hub's database" in hub.log.read_text()
    with engine.connect() as connection:
        found = connection.execute(text("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'campushub_ix_%'"))
        assert {name for (name,) in found} == set(ADDED_INDEXES)
    engine.dispose()
