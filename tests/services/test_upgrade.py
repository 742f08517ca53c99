"""`campushub upgrade`: a state directory written by the previous JupyterHub major version (5.x, run for real
from a venv of its own) is refused by `up`, upgraded, and then served with its users, groups and tokens."""

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import make_url

from campushub.hub import indexes
from campushub.ops import database
from harness import CAMPUSHUB, EMBEDDED, free_port

PREVIOUS = "jupyterhub==5.5.4"
ADDED = [indexes.name(table, column) for table, column in indexes.COLUMNS]
LEFT_OUT = ADDED[0]
SERVICE_TOKEN = secrets.token_hex(16)
PROXY = str(Path(sys.executable).parent / "configurable-http-proxy")


@pytest.fixture(scope="module")
def previous_jupyterhub(hub_root) -> Path:
    """A venv with the previous major version of JupyterHub (from PyPI), apart from campushub's."""
    venv = Path(tempfile.mkdtemp(prefix="jupyterhub5-", dir=hub_root))
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", PREVIOUS]
    result = subprocess.run(pip, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return venv / "bin" / "jupyterhub"


def run_previous(jupyterhub: Path, state: Path, passwords: dict) -> str:
    """Run JupyterHub 5 once on ``state`` (as campushub would have: same files), make users, a group and a token
    through its API, stop it; return the user's token."""
    port, hub_port, api_port = free_port(), free_port(), free_port()
    (state / "jupyterhub_config.py").write_text(
        f"""
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{PROXY!r}]
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/jupyterhub_cookie_secret"
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {passwords["shared_password"]!r}
c.SharedPasswordAuthenticator.admin_password = {passwords["admin_password"]!r}
c.Authenticator.admin_users = {{"boss"}}
c.JupyterHub.services = [{{"name": "setup", "api_token": {SERVICE_TOKEN!r}}}]
c.JupyterHub.load_roles = [{{"name": "setup", "scopes": ["admin:users", "admin:groups", "tokens"],
                             "services": ["setup"]}}]
"""
    )
    log = open(state / "jupyterhub5.log", "w")  # noqa: SIM115 (closed in the finally below, with the hub)
    hub = subprocess.Popen([str(jupyterhub), "-f", "jupyterhub_config.py"], cwd=state, stdout=log, stderr=log)
    api = f"http://127.0.0.1:{port}/hub/api"
    headers = {"Authorization": f"token {SERVICE_TOKEN}"}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{api}/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert hub.poll() is None and time.monotonic() < deadline, (state / "jupyterhub5.log").read_text()
            time.sleep(0.5)
        assert requests.get(f"{api}/", timeout=5).json()["version"].startswith("5.")
        for user in ("ada", "bob"):  # boss, an admin, is there already
            assert requests.post(f"{api}/users/{user}", headers=headers, timeout=30).status_code == 201
        r = requests.post(f"{api}/groups/physics", json={"users": ["ada", "bob"]}, headers=headers, timeout=30)
        assert r.status_code == 201, r.text
        r = requests.post(f"{api}/users/ada/tokens", json={"note": "from 5"}, headers=headers, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["token"]
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(60)
        log.close()
        (state / "jupyterhub_config.py").unlink()


def index_names(path: Path) -> set[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_a_state_from_jupyterhub_5_is_refused_then_upgraded_and_served(previous_jupyterhub, hub_factory):
    hub = hub_factory({**EMBEDDED, "hub": {"admin_users": ["boss"]}}, start=False)
    hub.state.mkdir(mode=0o700)
    passwords = {"shared_password": secrets.token_urlsafe(12), "admin_password": secrets.token_urlsafe(32)}
    for name, value in passwords.items():
        (hub.state / name).write_text(value + "\n")
    token = run_previous(previous_jupyterhub, hub.state, passwords)
    env = {**os.environ, "CAMPUSHUB_CONFIG": str(hub.config)}

    up = [CAMPUSHUB, "up"] + (["--as-user", hub.as_user] if hub.as_user else [])
    result = subprocess.run(up, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "hub.state_dir: the database" in result.stderr and "run `campushub upgrade` first" in result.stderr
    assert "Starting proxy" not in result.stderr  # stopped before anything started

    with sqlite3.connect(hub.state / "jupyterhub.sqlite") as db:
        (old,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert old != database.head()
    # two of the indexes campushub adds to JupyterHub's tables, there before the upgrade; the third left out
    database_url = make_url(f"sqlite:///{hub.state / 'jupyterhub.sqlite'}")
    assert indexes.create_missing(database_url) == [*ADDED]
    with sqlite3.connect(hub.state / "jupyterhub.sqlite") as db:
        db.execute(f"DROP INDEX {LEFT_OUT}")
    as_user = ["--as-user", hub.as_user] if hub.as_user else []
    result = subprocess.run([CAMPUSHUB, "upgrade", *as_user], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"from schema {old} to {database.head()}" in result.stdout, result.stdout
    assert f"  {database.head()}: " in result.stdout  # the migrations applied, each with what it changes
    (saved,) = (hub.state / "backups").glob("before-upgrade-*")
    assert f'"revision": "{old}"' in (saved / "manifest.json").read_text()
    assert '"jupyterhub": "6.' in (saved / "manifest.json").read_text()

    assert set(ADDED) - {LEFT_OUT} <= index_names(hub.state / "jupyterhub.sqlite")  # JupyterHub's migrations kept them

    hub.start()
    assert set(ADDED) <= index_names(hub.state / "jupyterhub.sqlite")  # the hub's start added the one left out
    me = requests.get(f"{hub.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30)
    assert me.status_code == 200, me.text
    assert me.json()["name"] == "ada" and me.json()["groups"] == ["physics"]
    boss, r = hub.password_login("boss", passwords["admin_password"])
    assert r.status_code == 302
    users = {u["name"]: u for u in hub.api(boss, "GET", "users").json()}
    assert set(users) == {"ada", "bob", "boss"} and users["boss"]["admin"]

    again = subprocess.run([CAMPUSHUB, "upgrade", *as_user], capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0 and "nothing to upgrade" in again.stdout
