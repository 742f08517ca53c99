"""What a profile runs: the spawner class for its backend and that spawner's settings."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from jupyterhub.traitlets import ByteSpecification

from .settings import ContainerProfile, LocalProfile, Site, SiteError, SlurmProfile

BIN = Path(sys.executable).parent
SINGLEUSER = str(BIN / "jupyterhub-singleuser")


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
    if isinstance(profile, ContainerProfile):
        return _container(site, profile, config)
    return _slurm(site, profile, config)


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


def _container(site: Site, profile: ContainerProfile, config: dict) -> tuple[str, dict]:
    """DockerSpawner on ``container.socket`` (default: $DOCKER_HOST, else /var/run/docker.sock)."""
    defaults = site.container
    notebook_dir = profile.notebook_dir or defaults.notebook_dir
    if defaults.socket:
        config["client_kwargs"] = {"base_url": defaults.socket}
    if defaults.hub_connect_url:
        config["hub_connect_url"] = defaults.hub_connect_url
    config.update(
        image=profile.image or defaults.image,
        pull_policy="never",  # images come from scripts/images or the site's registry, never implicitly
        remove=True,  # a stopped server's container goes (and the next start uses the current image)
        # {username} is escaped by DockerSpawner (a-z0-9, '-' escapes): names cannot collide
        volumes={defaults.volume: notebook_dir, **profile.volumes},
        notebook_dir=notebook_dir,
        network_name=profile.network or defaults.network or "bridge",
        # wrapspawner would otherwise hand the container the hub host's process settings
        ip="0.0.0.0",
        port=8888,
        cmd=None,  # the image's own command
    )
    if profile.gpus:
        config["extra_host_config"] = {
            "device_requests": [{"Driver": "", "Count": profile.gpus, "Capabilities": [["gpu"]]}]
        }
    return "dockerspawner.DockerSpawner", config


def _slurm(site: Site, profile: SlurmProfile, config: dict) -> tuple[str, dict]:
    """batchspawner's SlurmSpawner (campushub's fail-fast subclass), submitting as the user."""
    defaults = site.slurm
    python_bin = defaults.python_bin or BIN  # the same venv path must exist on the compute nodes
    cluster = f" -M {profile.cluster}" if profile.cluster else ""
    query = f"squeue -h{cluster} -j {{job_id}} -o '%T %r %B'"
    if cluster:
        query += " | grep -v '^CLUSTER'"  # -M puts a "CLUSTER: name" line before the job's
    config.pop("cpu_limit", None)  # Slurm's cgroups enforce cpus and memory; the server needs no hint
    config.pop("mem_limit", None)
    config.update(
        cmd=[str(python_bin / "jupyterhub-singleuser")],
        batchspawner_singleuser_cmd=str(python_bin / "batchspawner-singleuser"),
        req_partition=profile.partition or "",
        req_runtime=profile.runtime or "",
        req_nprocs=str(math.ceil(profile.cpu)) if profile.cpu else "",
        req_memory=f"{math.ceil(ByteSpecification().validate(None, profile.memory) / 2**20)}M"
        if profile.memory else "",
        req_gres=profile.gres or "",
        req_options=" ".join(_sbatch_options(profile)),
        req_prologue=profile.prologue,
        req_epilogue=profile.epilogue,
        batch_query_cmd=query,
        batch_cancel_cmd=f"scancel{cluster} {{job_id}}",
    )
    if defaults.submit_as == "sudo":
        config.update(exec_prefix="sudo -E -u {username}", batch_submit_cmd=f"sbatch --parsable{cluster}")
    else:  # the hub is root and Slurm switches user itself
        config.update(exec_prefix="",
                      batch_submit_cmd=f"sbatch --parsable{cluster} --uid={{username}} --gid={{username}}")
    if defaults.conf:
        config["slurm_conf"] = str(defaults.conf)
    if defaults.hub_connect_url:
        config["hub_connect_url"] = defaults.hub_connect_url
    return "campushub.slurm.CampusSlurmSpawner", config


def _sbatch_options(profile: SlurmProfile) -> list[str]:
    options = [f"--account={profile.account}"] if profile.account else []
    if profile.qos:
        options.append(f"--qos={profile.qos}")
    return options + profile.options


def has_persistent_servers(site: Site) -> bool:
    """Whether users' servers can outlive the hub (containers, jobs), so a hub restart must leave them running."""
    return any(isinstance(p, (ContainerProfile, SlurmProfile)) for p in site.profiles)


def needs_batchspawner(site: Site) -> bool:
    return any(isinstance(p, SlurmProfile) for p in site.profiles)
