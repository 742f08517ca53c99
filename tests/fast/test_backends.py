"""Backend details that need no service: what Slurm commands get, how volume names are made."""

import asyncio

from dockerspawner import DockerSpawner

from campushub.backends.slurm.spawner import CampusSlurmSpawner

VOLUME = "jupyterhub-user-{username}"


def test_slurm_commands_get_none_of_the_hubs_secrets(monkeypatch):
    """squeue and scancel run as the user (sudo -E -u): they must not carry the hub's environment."""
    monkeypatch.setenv("CAMPUSHUB_PROXY_SECRET", "must-not-reach-users")
    out = asyncio.run(CampusSlurmSpawner(slurm_conf="/etc/slurm/test.conf").run_command("env"))
    assert "must-not-reach-users" not in out
    assert "SLURM_CONF=/etc/slurm/test.conf" in out.splitlines()


def volume_of(name: str) -> str:
    return VOLUME.format(username=DockerSpawner._escape(name))


HOSTILE = [
    "a.b",
    "a-2eb",
    "a_b",
    "a-5fb",
    "ålice",
    "alice-",
    "alice-2d",
    "x" * 120,
    "x" * 119 + "-",
    "-alice",
    "alice--",
    "a b",
]


def test_hostile_names_never_share_a_volume():
    """DockerSpawner's escaping (which campushub keeps) is one-to-one, and every volume name is valid."""
    names = [volume_of(name) for name in HOSTILE]
    assert len(set(names)) == len(HOSTILE)
    assert all(n.replace("-", "").isalnum() and n.isascii() for n in names)
