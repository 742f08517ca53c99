"""`campushub backup` and `campushub restore` on real hubs, with SQLite and with a real PostgreSQL."""

import json
import os
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from harness import CAMPUSHUB, EMBEDDED

DB_PASSWORD_ENV = "CAMPUSHUB_TEST_DB_PASSWORD"


def campushub(*args, config, env=None, timeout=120) -> subprocess.CompletedProcess:
    command = [CAMPUSHUB, *args, "--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=["sqlite", "postgresql"])
def site_for(request, hub_root):
    """``site_for()``: the embedded default with an admin and named servers; on a new PostgreSQL database each
    time for the ``postgresql`` case."""
    extra = Path(tempfile.mkdtemp(prefix="named-servers-", dir=hub_root))  # the hub's account reads it
    extra.chmod(0o755)
    (extra / "named.py").write_text("c.JupyterHub.allow_named_servers = True\n")
    env = {}
    db = None
    if request.param == "postgresql":
        db = request.getfixturevalue("postgres")
        env = {DB_PASSWORD_ENV: db.password}

    def make() -> tuple[dict, dict]:
        hub = {"admin_users": ["boss"], "extra_config_dir": str(extra)}
        if db:
            hub.update(db_url=db.database(), db_password={"env": DB_PASSWORD_ENV})
        return {**EMBEDDED, "hub": hub}, env

    return make


def sign_in(hub, user: str) -> requests.Session:
    name = "admin_password" if user == "boss" else "shared_password"
    session, r = hub.password_login(user, (hub.state / name).read_text().strip())
    assert r.status_code == 302, r.text[:300]
    return session


def start_named(hub, session, user: str, name: str):
    r = hub.api(session, "POST", f"users/{user}/servers/{name}", json={})
    assert r.status_code in (201, 202), (r.status_code, r.text)
    deadline = time.monotonic() + 120
    while not hub.whoami_user(session, user)["servers"].get(name, {}).get("ready"):
        assert time.monotonic() < deadline, hub.tail()
        time.sleep(0.5)
    r = hub.api(session, "DELETE", f"users/{user}/servers/{name}")
    assert r.status_code in (202, 204), (r.status_code, r.text)
    while hub.whoami_user(session, user)["servers"].get(name):
        assert time.monotonic() < deadline, hub.tail()
        time.sleep(0.5)


def test_a_backup_of_a_running_hub_restores_into_a_new_state(site_for, hub_factory, tmp_path):
    site, env = site_for()
    first = hub_factory(site, env=env)
    boss, ada = sign_in(first, "boss"), sign_in(first, "ada")
    assert first.api(boss, "POST", "users/bob").status_code == 201
    assert first.api(boss, "POST", "groups/physics", json={"users": ["ada", "bob"]}).status_code == 201
    token = first.token(ada, "ada")
    start_named(first, ada, "ada", "analysis")

    saved = tmp_path / "backup"
    result = campushub("backup", str(saved), config=first.config, env=env)  # while the hub runs
    assert result.returncode == 0, result.stderr
    manifest = json.loads((saved / "manifest.json").read_text())
    kind = "postgresql" if "db_url" in site["hub"] else "sqlite"
    assert manifest["database"] == kind and manifest["campushub"] and manifest["jupyterhub"].startswith("6.")
    assert manifest["revision"] and manifest["created"]
    assert mode(saved) == 0o700 and all(mode(p) == 0o600 for p in saved.iterdir())
    assert {"jupyterhub_cookie_secret", "proxy_auth_token", "shared_password", "admin_password"} <= set(
        manifest["files"]
    )
    first.stop()

    # into a new state directory (and, for PostgreSQL, a new database), on other ports
    second_site = {**site, "hub": {**site["hub"], **site_for()[0]["hub"]}}
    second = hub_factory(second_site, env=env, start=False)
    result = campushub("restore", str(saved), config=second.config, env=env)
    assert result.returncode == 0, result.stderr
    for name in set(manifest["files"]) - {"jupyterhub.sqlite", "jupyterhub.pgdump"}:
        assert mode(second.state / name) == 0o600, name
    if kind == "sqlite":
        assert mode(second.state / "jupyterhub.sqlite") == 0o600
    second.start()
    assert second.whoami(ada)["name"] == "ada"  # signed in before the backup: still signed in, on the new hub
    me = requests.get(f"{second.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30)
    assert me.status_code == 200 and me.json()["name"] == "ada" and me.json()["groups"] == ["physics"]
    users = {u["name"]: u for u in second.api(boss, "GET", "users").json()}
    assert set(users) == {"ada", "bob", "boss"} and users["boss"]["admin"]
    assert second.api(boss, "GET", "groups/physics").json()["users"] == ["ada", "bob"]
    record = second.api(boss, "GET", "users/ada?include_stopped_servers=1").json()["servers"]
    assert "analysis" in record and not record["analysis"]["ready"]

    # a running hub's state is never replaced, not even with --force
    result = campushub("restore", "--force", str(saved), config=second.config, env=env)
    assert result.returncode == 2 and "is running" in result.stderr and "stop it" in result.stderr
    second.stop()
    result = campushub("restore", str(saved), config=second.config, env=env)
    assert result.returncode == 2 and "already holds a hub's state" in result.stderr and "--force" in result.stderr
    result = campushub("restore", "--force", str(saved), config=second.config, env=env)
    assert result.returncode == 0, result.stderr
    earlier = list((second.state / "backups").glob("before-restore-*/manifest.json"))
    assert len(earlier) == 1, "the state it replaced is backed up first"


def test_restore_refuses_a_changed_backup(site_for, hub_factory, tmp_path):
    site, env = site_for()
    hub = hub_factory(site, env=env)
    saved = tmp_path / "backup"
    assert campushub("backup", str(saved), config=hub.config, env=env).returncode == 0
    hub.stop()
    (saved / "jupyterhub_cookie_secret").write_text("not the one backed up\n")
    fresh = hub_factory({**site, "hub": {**site["hub"], **site_for()[0]["hub"]}}, env=env, start=False)
    result = campushub("restore", str(saved), config=fresh.config, env=env)
    assert result.returncode == 2 and "jupyterhub_cookie_secret: missing or changed" in result.stderr
    assert not (fresh.state / "jupyterhub_cookie_secret").exists()
