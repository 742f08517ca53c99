"""The hub's database URL: SQLite by default, PostgreSQL with its password from a secret source, never the file."""

import subprocess

import yaml

from campushub.ops import database
from campushub.sitefile.read import load_site
from harness import CAMPUSHUB, EMBEDDED, free_port

PG = "postgresql://hub@db.example.edu:5432/hub"


def site_file(tmp_path, hub: dict):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({**EMBEDDED, "hub": {"state_dir": "state", **hub}}))
    return path


def test_the_embedded_default_is_sqlite_in_the_state_directory(tmp_path):
    site = load_site(site_file(tmp_path, {}))
    (tmp_path / "state").mkdir()
    assert database.url_text(site) == f"sqlite:///{tmp_path / 'state' / 'jupyterhub.sqlite'}"
    database.prepare(site)
    assert (tmp_path / "state" / "jupyterhub.sqlite").stat().st_mode & 0o777 == 0o600
    assert database.kind(site) == "sqlite"


def test_the_password_comes_from_the_environment_or_a_file_and_is_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_DB_PASSWORD", "p@ss/w:rd")
    site = load_site(site_file(tmp_path, {"db_url": PG, "db_password": {"env": "HUB_DB_PASSWORD"}}))
    assert database.url_text(site) == "postgresql+psycopg://hub:p%40ss%2Fw%3Ard@db.example.edu:5432/hub"
    assert "p@ss" not in database.shown(site) and "%40" not in database.shown(site)
    args, env = database.libpq(site)
    assert args == ["--dbname", PG] and env["PGPASSWORD"] == "p@ss/w:rd"

    (tmp_path / "db-password").write_text("from-a-file\n")
    site = load_site(site_file(tmp_path, {"db_url": PG, "db_password": {"file": "db-password"}}))  # beside the file
    assert database.url(site).password == "from-a-file"


def test_a_password_in_the_url_or_without_a_url_is_refused(tmp_path):
    bad = {
        "hub.db_url: Value error, has a password in it": {"db_url": "postgresql://hub:secret@db/hub"},
        "hub.db_password: Value error, set db_url too": {"db_password": {"env": "X"}},
        "hub.db_url: Value error, 'not a url' is not a database URL": {"db_url": "not a url"},
    }
    for message, hub in bad.items():
        result = subprocess.run(
            [CAMPUSHUB, "check", "--offline", "--config", str(site_file(tmp_path, hub))], capture_output=True, text=True
        )
        assert result.returncode == 2 and message.replace("Value error, ", "") in result.stderr, result.stderr
        assert "secret" not in result.stderr


def test_check_names_an_unset_password_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("HUB_DB_PASSWORD", raising=False)
    ports = {"bind_url": f"http://127.0.0.1:{free_port()}", "hub_port": free_port(), "proxy_api_port": free_port()}
    path = site_file(tmp_path, {"db_url": PG, "db_password": {"env": "HUB_DB_PASSWORD"}, **ports})
    result = subprocess.run([CAMPUSHUB, "check", "--config", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "hub.db_password.env: environment variable HUB_DB_PASSWORD is not set" in result.stderr
