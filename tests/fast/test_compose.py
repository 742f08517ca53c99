"""The compose deployment seen from the host (no engine needed): ``.env``, the hub's environment,
``campushub check --compose`` before any engine, unknown keys, the front door's hints and secrets,
and ``up``'s slow failure."""

import os
import subprocess
import time

import pytest
import yaml

from campushub.cli import main
from campushub.ops.compose import Deployment, read_env_file
from campushub.sitefile import origins
from harness import CAMPUSHUB, REPO

EXAMPLE = yaml.safe_load((REPO / "examples" / "compose.yaml").read_text())
DOOR_FILES = [REPO / "compose.yaml", REPO / "compose.frontdoor.yaml"]


def test_the_hubs_variables_and_their_env_keys_match_compose_yaml():
    """origins.COMPOSE_KEYS names, in messages, the .env key behind each variable compose.yaml sets."""
    raw = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]["hub"]["environment"]
    deployment = Deployment.read([REPO / "compose.yaml"], REPO / "no-such.env", environ={})
    assert set(origins.COMPOSE_KEYS) <= set(raw)
    for name, key in origins.COMPOSE_KEYS.items():
        assert deployment.keys_in(str(raw[name])) == ([key] if key else []), name
    assert deployment.mount(origins.MOUNTED_SOCKET)[1] == "${CONTAINER_SOCKET:-/var/run/docker.sock}"


def test_env_file_is_read_as_compose_reads_it(tmp_path):
    env = tmp_path / ".env"
    env.write_text(
        "# a comment\nexport LAB_IMAGE=localhost/x:1\nCAMPUSHUB_PORT='8100'\nCONTAINER_SOCKET=/run/a.sock # inline\n"
        'CAMPUSHUB_PROXY_SECRET="with # hash"\nEMPTY=\n'
    )
    assert read_env_file(env) == {
        "LAB_IMAGE": "localhost/x:1",
        "CAMPUSHUB_PORT": "8100",
        "CONTAINER_SOCKET": "/run/a.sock",
        "CAMPUSHUB_PROXY_SECRET": "with # hash",
        "EMPTY": "",
    }
    # the shell's variables win over .env; compose.yaml's defaults fill the rest
    deployment = Deployment.read([REPO / "compose.yaml"], env, environ={"CAMPUSHUB_PORT": "8200"})
    hub = deployment.hub_environment()
    assert hub["DOCKER_JUPYTER_CONTAINER"] == "localhost/x:1"
    assert hub[origins.COMPOSE_SOCKET] == "/run/a.sock"
    assert deployment.health_url() == "http://127.0.0.1:8200/hub/health"
    assert deployment.mount("/etc/campushub/campushub.yaml")[0] == REPO / "campushub.yaml"
    assert deployment.where("LAB_IMAGE") == f"LAB_IMAGE in {env}"
    assert deployment.where("CAMPUSHUB_PORT").startswith("CAMPUSHUB_PORT in the environment")
    assert deployment.where("CAMPUSHUB_SUBNET").endswith("compose.yaml's default")
    door = Deployment.read(DOOR_FILES, env, environ={})
    assert door.hub_environment()["CAMPUSHUB_PROXY_SECRET"] == "with # hash"
    assert door.hub_addresses() == {
        "campushub": ("10.89.77.2", "${CAMPUSHUB_HUB_ADDRESS:-10.89.77.2}"),
        "campushub-door": ("10.89.78.2", "${CAMPUSHUB_DOOR_HUB_ADDRESS:-10.89.78.2}"),
    }


@pytest.fixture
def compose_check(tmp_path, capsys, monkeypatch):
    """``compose_check(site, **env)``: ``campushub check --compose`` with .env holding ``env`` and the site
    file (a dict, or None for none); no engine answers (CONTAINER_SOCKET names nothing) unless ``env`` says."""
    for name in (
        "CAMPUSHUB_SITE_FILE",
        "CONTAINER_SOCKET",
        "LAB_IMAGE",
        "CAMPUSHUB_PROXY_SECRET",
        "CAMPUSHUB_DB_PASSWORD",
        "DOCKER_HOST",
    ):
        monkeypatch.delenv(name, raising=False)

    def run(site, files=(REPO / "compose.yaml",), **env):
        if site is not None:
            (tmp_path / "campushub.yaml").write_text(yaml.safe_dump(site))
        env = {"CAMPUSHUB_SITE_FILE": str(tmp_path / "campushub.yaml"), "CONTAINER_SOCKET": "/run/nowhere.sock", **env}
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        code = main(["check", "--compose", *map(str, files), "--env-file", str(tmp_path / ".env")])
        out = capsys.readouterr()
        return code, out.err.strip().splitlines()

    return run


def test_check_compose_names_the_site_file_setting(compose_check, tmp_path):
    code, lines = compose_check(None, CAMPUSHUB_SITE_FILE="campushub.yaml")
    assert code == 2 and lines[0].startswith("CAMPUSHUB_SITE_FILE in ") and "must start with ./ or /" in lines[0]
    code, lines = compose_check(None, CAMPUSHUB_SITE_FILE=str(tmp_path / "none.yaml"))
    assert code == 2 and f"{tmp_path / 'none.yaml'} does not exist (cp examples/compose.yaml" in lines[0], lines
    (tmp_path / "made-by-an-engine").mkdir()
    code, lines = compose_check(None, CAMPUSHUB_SITE_FILE=str(tmp_path / "made-by-an-engine"))
    assert code == 2 and "is a directory, not the site file" in lines[0] and "rmdir" in lines[0], lines


def test_check_compose_reads_the_site_as_the_hub_will_and_suggests_keys(compose_check, tmp_path):
    site = {**EXAMPLE, "profiles": [{**EXAMPLE["profiles"][0], "memroy": "2G"}]}
    code, lines = compose_check(site)
    assert code == 2
    assert lines == [
        f"{tmp_path / 'campushub.yaml'}: profiles.0.memroy: unknown key; did you mean memory?"
        " (see docs/site-file.md for the keys it takes)"
    ]


def test_check_compose_names_the_socket_setting_and_a_directory_in_its_place(compose_check, tmp_path):
    code, lines = compose_check(EXAMPLE)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("container.socket: no container engine answers at unix:///run/nowhere.sock")
    assert f"CONTAINER_SOCKET in {tmp_path / '.env'}" in lines[0] and "no such file" in lines[0]
    (tmp_path / "podman.sock").mkdir()  # what Podman leaves at a wrong CONTAINER_SOCKET after an `up`
    code, lines = compose_check(EXAMPLE, CONTAINER_SOCKET=str(tmp_path / "podman.sock"))
    assert code == 2 and "is a directory, not an engine's socket" in lines[0], lines
    assert f"rmdir {tmp_path / 'podman.sock'}" in lines[0] and "CONTAINER_SOCKET" in lines[0]


def test_check_compose_wants_the_proxy_secret_in_env_and_the_hubs_own_address(compose_check, tmp_path):
    site = {**EXAMPLE, "auth": {**EXAMPLE["auth"], "proxy_secret": {"env": "CAMPUSHUB_PROXY_SECRET"}}}
    code, lines = compose_check(site)  # compose.yaml alone does not pass the secret
    assert code == 2 and "auth.proxy_secret.env: CAMPUSHUB_PROXY_SECRET is not in the hub's environment" in lines[0]
    code, lines = compose_check(site, files=DOOR_FILES, CAMPUSHUB_PROXY_SECRET="")
    assert code == 2
    assert lines[0].startswith("auth.proxy_secret.env: CAMPUSHUB_PROXY_SECRET is empty: set CAMPUSHUB_PROXY_SECRET in")
    code, lines = compose_check(site, files=DOOR_FILES, CAMPUSHUB_PROXY_SECRET="short")
    assert code == 2 and "shorter than 16 characters" in lines[0], lines
    code, lines = compose_check(
        site, files=DOOR_FILES, CAMPUSHUB_PROXY_SECRET="x" * 32, CAMPUSHUB_HUB_ADDRESS="10.89.77.5"
    )
    assert code == 2
    assert lines[0].startswith("hub.hub_connect_ip: 10.89.77.2, but compose gives the hub 10.89.77.5"), lines
    assert "CAMPUSHUB_HUB_ADDRESS in" in lines[0]


def test_check_compose_wants_the_database_password_in_env(compose_check, tmp_path):
    """PostgreSQL (compose.postgres.yaml): the hub reads the password compose passes from .env."""
    url = "postgresql://campushub@10.89.79.3:5432/campushub"
    site = {**EXAMPLE, "hub": {**EXAMPLE["hub"], "db_url": url, "db_password": {"env": "CAMPUSHUB_DB_PASSWORD"}}}
    code, lines = compose_check(site)  # compose.yaml alone does not pass it
    assert code == 2 and lines[0].startswith(
        "hub.db_password.env: CAMPUSHUB_DB_PASSWORD is not in the hub's environment"
    ), lines
    assert lines[0].endswith("with PostgreSQL, compose.postgres.yaml passes it"), lines
    files = [REPO / "compose.yaml", REPO / "compose.postgres.yaml"]
    code, lines = compose_check(site, files=files, CAMPUSHUB_DB_PASSWORD="")
    assert lines[0].startswith("hub.db_password.env: CAMPUSHUB_DB_PASSWORD is empty: set CAMPUSHUB_DB_PASSWORD in")


def test_check_compose_refuses_config_beside_it(capsys):
    assert main(["check", "--compose", "--config", "x.yaml"]) == 2
    assert "CAMPUSHUB_SITE_FILE" in capsys.readouterr().err


def test_frontdoor_hints_how_to_run_it(tmp_path, capsys, monkeypatch):
    site = yaml.safe_load((REPO / "examples" / "frontdoor-local.yaml").read_text())
    monkeypatch.setenv("CAMPUSHUB_PROXY_SECRET", "s" * 32)
    monkeypatch.setenv("CAMPUSHUB_OIDC_SECRET", "o" * 32)
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    out = tmp_path / "door"
    assert main(["frontdoor", "--config", str(tmp_path / "site.yaml"), "--out", str(out)]) == 0
    assert f"run it with: {out.absolute() / 'run'} (as root" in capsys.readouterr().out
    assert f"exec apache2 -f {out.absolute() / 'httpd.conf'} -DFOREGROUND" in (out / "run").read_text()
    # with --root the configuration holds the container's paths: no hint to run it on this host
    assert main(["frontdoor", "--config", str(tmp_path / "site.yaml"), "--out", str(out), "--root", "/etc/x"]) == 0
    printed = capsys.readouterr().out
    assert "run it with" not in printed and "scripts/compose -f compose.yaml -f compose.frontdoor.yaml" in printed


def test_check_says_which_front_door_secrets_are_missing(tmp_path, monkeypatch):
    site = tmp_path / "site.yaml"
    site.write_text((REPO / "examples" / "frontdoor-local.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if k not in ("CAMPUSHUB_PROXY_SECRET", "CAMPUSHUB_OIDC_SECRET")}
    result = subprocess.run(
        [CAMPUSHUB, "check", "--offline", "--config", str(site)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "warning: auth.proxy_secret.env: CAMPUSHUB_PROXY_SECRET is not set here" in result.stderr
    assert "warning: front_door.oidc.client_secret.env: CAMPUSHUB_OIDC_SECRET is not set here" in result.stderr


def test_up_waits_before_exiting_on_a_bad_site_file(tmp_path):
    """In a container, a bad file is a restart loop: --retry-delay keeps it slow (the image sets 30 s)."""
    (tmp_path / "site.yaml").write_text("hub: {bind_ulr: x}\n")
    start = time.monotonic()
    result = subprocess.run(
        [CAMPUSHUB, "up", "--retry-delay", "2", "--config", str(tmp_path / "site.yaml")], capture_output=True, text=True
    )
    assert result.returncode == 2 and time.monotonic() - start >= 2
    assert result.stderr.startswith("hub.bind_ulr: unknown key; did you mean bind_url?"), result.stderr
