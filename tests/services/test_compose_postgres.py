"""The compose deployment with PostgreSQL (compose.postgres.yaml) on a real Podman: the hub's database
in its own container and volume, on a network users' containers never join (issue 11)."""

import os

import pytest

from harness import GROUP, LAB_IMAGE, Compose, remove_volumes, run_in_kernel

PROJECT = f"chpg{os.getpid()}"
PASSWORD = "a-database-password-for-tests-only"
DB_ADDRESS = "10.89.79.3"
FILES = ("compose.yaml", "compose.postgres.yaml")
SITE = {
    "hub": {
        "bind_url": "http://0.0.0.0:8000",
        "hub_ip": "0.0.0.0",
        "hub_connect_ip": "10.89.77.2",
        "state_dir": "/srv/campushub/state",
        "db_url": f"postgresql://campushub@{DB_ADDRESS}:5432/campushub",
        "db_password": {"env": "CAMPUSHUB_DB_PASSWORD"},
    },
    # the published port reaches the hub from the host's address on whichever of its networks the
    # engine forwards it to: either gateway is the host (users' containers never reach the database's)
    "auth": {"type": "remote_user", "required_groups": [GROUP], "trusted_proxies": ["10.89.77.1/32", "10.89.79.1/32"]},
    "container": {"volume": PROJECT + "-user-{username}"},
    "profiles": [{"slug": "lab", "name": "JupyterLab", "backend": "container", "image": LAB_IMAGE, "default": True}],
    "culler": {"enabled": False},
}


@pytest.fixture(scope="module")
def deployment(engine, hub_root):
    compose = Compose(
        hub_root / "compose-postgres", SITE, PROJECT, engine, files=FILES, env={"CAMPUSHUB_DB_PASSWORD": PASSWORD}
    )
    compose.up()  # scripts/compose starts hub and db, and waits for /hub/health
    yield compose
    compose.compose("down")
    remove_volumes(PROJECT)


def test_users_and_tokens_live_in_postgresql_across_a_restart(deployment):
    s = deployment.login("pat")
    token = deployment.token(s, "pat")
    state = deployment.podman("exec", deployment.hub_container, "ls", "/srv/campushub/state")
    assert "jupyterhub.sqlite" not in state.split(), state  # the hub's database is not SQLite
    users = deployment.podman(
        "exec", f"{PROJECT}_db_1", "psql", "-qtA", "-d", "campushub", "-c", "select name from users"
    )
    assert "pat" in users.split(), users
    backed = deployment.podman("exec", deployment.hub_container, "campushub", "backup", "/srv/campushub/state/b1")
    assert "backed up the postgresql database" in backed, backed  # pg_dump, in the hub's image
    deployment.compose("down")  # the volumes stay
    deployment.up()
    r = deployment.session().get(f"{deployment.url}/hub/api/user", headers={"Authorization": f"token {token}"})
    assert r.status_code == 200 and r.json()["name"] == "pat", r.text


def test_users_containers_cannot_reach_the_database(deployment):
    """An attacker with a notebook tries the database's port: its network is not the users'."""
    s = deployment.login("mallory")
    deployment.start_server(s, "mallory")
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('{DB_ADDRESS}', 5432), timeout=5); r = 'connected'\n"
        "except OSError as e:\n"
        "    r = type(e).__name__\n"
        "r"
    )
    assert run_in_kernel(deployment.url, "mallory", deployment.token(s, "mallory"), code) != "'connected'"
    deployment.stop_server(s, "mallory")
