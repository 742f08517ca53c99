"""``backend: local``: JupyterLab as a process on the hub's host (JupyterHub's local spawners)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..choices import Choices, NumberChoice, SizeChoice
from ..errors import StartError
from .base import Backend, ProfileBase

SINGLEUSER = str(Path(sys.executable).parent / "jupyterhub-singleuser")


class LocalChoices(Choices):
    """What users of a ``local`` profile may choose (passed to the server; not enforced)."""

    cpu: NumberChoice | None = Field(None, description="CPUs")
    memory: SizeChoice | None = Field(None, description="memory")


class LocalProfile(ProfileBase):
    """A JupyterLab process on the hub's host."""

    backend: Literal["local"]
    choices: LocalChoices | None = Field(None, description="what users choose when they start it, within bounds")
    system_users: bool = Field(
        False,
        description="`false`: servers run as the hub's account, each user in"
        " `state_dir/home/NAME`. `true`: each server runs as the system account of the same"
        " name, in its home folder (the hub must run as root, and the accounts must exist)",
    )


class Local(Backend):
    name = "local"
    profile = LocalProfile
    choices = LocalChoices
    on_hub_host = True

    def choice_settings(self, settings, chosen):
        return limits(chosen)

    def needs_account(self, profile):
        return profile.system_users

    def as_hub_account(self, profile):
        return not profile.system_users

    def warnings(self, site, index, profile):
        fields = [f for f in ("cpu", "memory") if getattr(profile, f) is not None]
        fields += [f"choices.{f}" for f in ("cpu", "memory") if getattr(profile.choices, f, None) is not None]
        return [
            f"profiles.{index}.{field}: the local backend cannot enforce this limit;"
            " it is only passed to the server as an environment variable"
            for field in fields
        ]

    def spawner_class(self, profile):
        if profile.system_users:
            return "jupyterhub.spawner.LocalProcessSpawner"
        return "jupyterhub.spawner.SimpleLocalProcessSpawner"

    def spawner(self, site, index, profile, config):
        config["cmd"] = [SINGLEUSER]
        if site.spawner.notebook_dir:
            config["notebook_dir"] = site.spawner.notebook_dir
        if profile.system_users:
            return self.spawner_class(profile), config
        if os.geteuid() == 0:
            raise StartError(
                [
                    f"profiles.{index}.system_users: the hub runs as root, so this profile's servers would too"
                    " and every user would be root; run the hub as an unprivileged account"
                    " (`campushub up --as-user NAME`, as scripts/up does) or set system_users: true"
                ]
            )
        # servers run as the hub's own user, each in a private folder kept in the state directory
        config["home_dir_template"] = str(site.hub.state_dir / "home" / "{username}")
        return self.spawner_class(profile), config


def limits(chosen: dict) -> dict:
    """JupyterHub's cpu_limit and mem_limit for chosen CPUs and memory."""
    found = {}
    if "cpu" in chosen:
        found["cpu_limit"] = float(chosen["cpu"])
    if "memory" in chosen:
        found["mem_limit"] = int(chosen["memory"])
    return found


BACKEND = Local()
