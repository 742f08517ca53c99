"""What a profile runs: the spawner class for its backend and that spawner's settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .settings import LocalProfile, Site, SiteError

SINGLEUSER = str(Path(sys.executable).parent / "jupyterhub-singleuser")


def spawner_for(site: Site, index: int) -> tuple[str, dict]:
    """(spawner class, settings) for ``site.profiles[index]``.

    The settings are complete: wrapspawner gives a profile's settings priority
    over the shared ``c.Spawner`` ones, so the shared ones are merged in here.
    """
    profile = site.profiles[index]
    config = {
        "default_url": site.spawner.default_url,
        "start_timeout": site.spawner.start_timeout,
        "http_timeout": site.spawner.http_timeout,
        "environment": {
            "JUPYTERHUB_ACTIVITY_INTERVAL": str(site.culler.activity_interval),
            **site.spawner.environment,
            **profile.environment,
        },
    }
    for field, trait in (("cpu", "cpu_limit"), ("memory", "mem_limit")):
        if getattr(profile, field) is not None:
            config[trait] = getattr(profile, field)
    if isinstance(profile, LocalProfile):
        return _local(site, index, config)
    raise SiteError([f"profiles.{index}.backend: {profile.backend!r} profiles are not available in this version"])


def _local(site: Site, index: int, config: dict) -> tuple[str, dict]:
    profile = site.profiles[index]
    config["cmd"] = [SINGLEUSER]
    if site.spawner.notebook_dir:
        config["notebook_dir"] = site.spawner.notebook_dir
    if profile.system_users:
        return "jupyterhub.spawner.LocalProcessSpawner", config
    if os.geteuid() == 0:
        raise SiteError([
            f"profiles.{index}.system_users: the hub runs as root, so this profile's servers would too"
            " and every user would be root; run the hub as an unprivileged account"
            " (`campushub up --as-user NAME`, as scripts/up does) or set system_users: true"
        ])
    # servers run as the hub's own user, each in a private folder kept in the state directory
    config["home_dir_template"] = str(site.hub.state_dir / "home" / "{username}")
    return "jupyterhub.spawner.SimpleLocalProcessSpawner", config
