"""``backend: local``: JupyterLab as a process on the hub's host.

JupyterHub's local spawners, which campushub's start by default from a pre-imported parent
(:mod:`campushub.server.forkserver`): the server answers in a tenth of a second instead of seconds.
When the fast path cannot serve, the server starts the normal way and the hub's log says why.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field

from ...sitefile.choices import Choices, NumberChoice, SizeChoice
from ...sitefile.errors import StartError
from ..base import Backend, ProfileBase, limits, limits_words
from . import forking

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
    share_identical_pages: bool = Field(
        False,
        description="`true`: the host's kernel may merge the memory pages that are the same in different users'"
        " servers (KSM, Linux 6.4 and later, started by the host's admin), about half of an idle server's own"
        " memory; kernels never take part. Off by default: a user's code in their own server could then tell, by"
        " timing, whether another user's server holds a page of the same content (docs/fast-start.md)",
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

    def install(self, site):
        """Start the fork server while the hub starts, when a profile uses it."""
        if any(p.backend == self.name and p.fast_start for p in site.profiles):
            forking.warm(forking.interpreter(SINGLEUSER), logging.getLogger("JupyterHub"))

    def doctor(self, site, known):
        """Processes in a user's folder of the state directory (servers as the hub's account) for users who have no
        server."""
        homes = site.hub.state_dir / "home"
        if known is None or not homes.is_dir():
            return []
        findings = []
        for pid in sorted(filter(str.isdigit, os.listdir("/proc")), key=int):
            try:
                cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
            except OSError:
                continue
            if homes in cwd.parents and not known.owner(user := cwd.relative_to(homes).parts[0]):
                said = f"processes: pid {pid} runs in {user}'s folder ({cwd}) but {user} has no server"
                findings.append(f"{said}; stop it: kill {pid}")
        return findings

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
        notes = [
            f"profiles.{index}.{field}: the local backend cannot enforce this limit;"
            " it is only passed to the server as an environment variable"
            for field in fields
        ]
        if profile.share_identical_pages:
            notes += _sharing_warnings(f"profiles.{index}.share_identical_pages", profile.fast_start)
        return notes

    def spawner_class(self, profile):
        if profile.system_users:
            return "campushub.backends.local.spawner.CampusLocalSpawner"
        return "campushub.backends.local.spawner.CampusHubAccountSpawner"

    def spawner(self, site, index, profile, config):
        config["cmd"] = [SINGLEUSER]
        config["fast_start"] = profile.fast_start
        config["share_identical_pages"] = profile.share_identical_pages
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


BACKEND = Local()


#: whether the host's kernel merges identical pages (KSM): "1" while it runs
KSM_RUN = Path("/sys/kernel/mm/ksm/run")


def _sharing_warnings(field: str, fast_start: bool) -> list[str]:
    """Why ``share_identical_pages`` would save nothing on this host, if it would not."""
    if not fast_start:
        return [f"{field}: only servers forked from the pre-imported parent share pages, and fast_start is false"]
    try:
        running = KSM_RUN.read_text().strip() == "1"
    except OSError:
        return [f"{field}: this host's kernel has no KSM ({KSM_RUN} is missing), so no page will be shared"]
    if not running:
        return [
            f"{field}: the host's KSM is stopped, so no page is shared until an admin starts it:"
            f" echo 1 > {KSM_RUN} (docs/fast-start.md)"
        ]
    return []
