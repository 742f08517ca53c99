"""``backend: local``: JupyterLab as a process on the hub's host.

JupyterHub's local spawners, which campushub's start by default from a pre-imported parent
(:mod:`campushub.forkserver`): the server answers in a tenth of a second instead of seconds.
When the fast path cannot serve, the server starts the normal way and the hub's log says why.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Literal

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner
from jupyterhub.utils import random_port
from pydantic import Field
from traitlets import Bool

from .. import forkserver
from ..choices import Choices, NumberChoice, SizeChoice
from ..errors import StartError
from .base import Backend, OwnAccount, ProfileBase, keep_state, limits, limits_words

SINGLEUSER = str(Path(sys.executable).parent / "campushub-singleuser")


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
    fast_start: bool = Field(
        True,
        description="start servers (and their Python kernels) by forking a parent that has imported JupyterLab"
        " already: about a tenth of a second each instead of seconds; `false`: start each the normal way",
    )


class Local(Backend):
    name = "local"
    profile = LocalProfile
    choices = LocalChoices
    takes_turns = True

    def on_hub_host(self, site):
        return True

    def choice_settings(self, settings, chosen):
        return limits(chosen)

    def configure_hub(self, c, site):
        """Start the fork server while the hub starts, when a profile uses it."""
        if any(p.backend == self.name and p.fast_start for p in site.profiles):
            forkserver.warm(interpreter(SINGLEUSER), logging.getLogger("JupyterHub"))

    def card(self, site, profile):
        if profile.system_users:
            runs, keeps = "on the hub's machine, as your own account", "your home folder on that machine"
        else:
            runs = "on the hub's machine, in a folder of your own"
            keeps = "your folder, across restarts of your server and of the hub"
        return {"gets": limits_words(profile, [], enforced=False), "runs": runs, "keeps": keeps}

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
            return "campushub.backends.local.CampusLocalSpawner"
        return "campushub.backends.local.CampusHubAccountSpawner"

    def spawner(self, site, index, profile, config):
        config["cmd"] = [SINGLEUSER]
        config["fast_start"] = profile.fast_start
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


class FastStart(LocalProcessSpawner):
    """A local spawner that starts the server by forking it from a pre-imported parent."""

    fast_start = Bool(True, config=True, help="Fork servers from a pre-imported parent.")

    async def start(self):
        if self.port == 0:
            self.port = random_port()
        python = interpreter(self.cmd[0]) if self.fast_start else None
        if python is None:
            if self.fast_start:
                self.log.info("Starting %s the normal way: %s is not a Python script", self._log_name, self.cmd[0])
            return await super().start()
        env = self.get_env()
        argv = [*self.cmd, *self.get_args()]
        try:
            self.pid = await forkserver.fork(python, self.fork_spec(env, argv), self.log)
        except forkserver.Unavailable as e:
            self.log.warning("Starting %s the normal way: %s", self._log_name, e)
            return await super().start()
        self.log.info("Forked %s as pid %s", self._log_name, self.pid)
        ip = self.ip or "127.0.0.1"
        keep_state(self, ip, self.port)
        return (ip, self.port)


class CampusLocalSpawner(FastStart, OwnAccount):
    """LocalProcessSpawner (each server as its user's own account, never a system account's) with the fast start."""

    async def start(self):
        self.own_account()
        return await super().start()

    def fork_spec(self, env: dict, argv: list[str]) -> dict:
        account = self.own_account()
        return {
            "argv": argv,
            "env": env,
            "cwd": account.pw_dir,
            "uid": account.pw_uid,
            "gid": account.pw_gid,
            "groups": os.getgrouplist(self.user.name, account.pw_gid),
            "umask": 0o022,
        }


class CampusHubAccountSpawner(FastStart, SimpleLocalProcessSpawner):
    """SimpleLocalProcessSpawner (servers as the hub's own account, each in its folder) with the fast start."""

    def fork_spec(self, env: dict, argv: list[str]) -> dict:
        return {"argv": argv, "env": env, "cwd": self.home_dir, "uid": None, "umask": 0o022}


def interpreter(script: str) -> str | None:
    """The Python a console script runs with (its ``#!`` line), if it is one."""
    try:
        with open(script, "rb") as f:
            first = f.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    python = first[2:].strip().split()[0].decode()
    return python if "python" in os.path.basename(python) and os.access(python, os.X_OK) else None


BACKEND = Local()
