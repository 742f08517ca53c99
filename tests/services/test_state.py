"""The state directory on the embedded default: private secrets, made once, reused across restarts."""

import sqlite3
import stat

SITE = {
    "auth": {"type": "shared_password"},
    "profiles": [{"slug": "local", "name": "JupyterLab", "backend": "local", "default": True}],
    "culler": {"enabled": False},
}
SECRETS = ["jupyterhub_cookie_secret", "proxy_auth_token", "shared_password", "jupyterhub.sqlite"]


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_private_and_survive_a_restart_with_the_login(hub_factory):
    hub = hub_factory(SITE)
    assert mode(hub.state) == 0o700
    for name in SECRETS:
        assert mode(hub.state / name) == 0o600, name
    before = {name: (hub.state / name).read_text() for name in SECRETS[:3]}

    log = hub.log.read_text()
    password = before["shared_password"].strip()
    assert password not in log  # never printed: the hub's output ends up in journald and compose logs
    assert f"cat {hub.state / 'shared_password'}" in log

    s, wrong = hub.password_login("ada", "not-the-password")
    assert wrong.status_code == 403 and hub.api(s, "GET", "user").status_code == 403
    s, r = hub.password_login("ada", password)
    assert r.status_code == 302, r.text[:300]
    assert hub.whoami(s)["name"] == "ada"
    # the database in write-ahead-log mode (quick commits), its log and index as private as it is
    database = sqlite3.connect(f"file:{hub.state / 'jupyterhub.sqlite'}?mode=ro", uri=True)
    assert database.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    database.close()
    for name in ("jupyterhub.sqlite-wal", "jupyterhub.sqlite-shm"):
        assert mode(hub.state / name) == 0o600, name

    hub.stop()
    hub.start()
    assert {name: (hub.state / name).read_text() for name in SECRETS[:3]} == before
    assert hub.log.read_text().count("made a shared password") == 1  # made once
    assert hub.whoami(s)["name"] == "ada"  # the old cookie still logs ada in
