"""The backends a profile can run on: one slice per module, listed here.

Each slice (:class:`~campushub.backends.base.Backend`) owns its profile model, its checks, its
preflight, the spawner settings it produces, and its spawner class. The site file's ``profiles``
union, the dispatch, and rules such as "servers outlive the hub" are built from this list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from ..server.forkserver import WARM_KERNELS
from . import container, local, slurm
from .base import Backend

#: every backend, by the name profiles give in ``backend:``
BACKENDS: dict[str, Backend] = {b.name: b for b in (local.BACKEND, container.BACKEND, slurm.BACKEND)}


def profile_union(backends: dict[str, Backend]) -> Any:
    """The ``profiles`` items' type: one of the ``backends``' profile models, by ``backend:``."""
    return Annotated[Union[tuple(b.profile for b in backends.values())], Field(discriminator="backend")]


if TYPE_CHECKING:
    Profile = Any  # one of the slices' profile models: the union is built at run time
else:
    Profile = profile_union(BACKENDS)


def backend_of(profile) -> Backend:
    return BACKENDS[profile.backend]


def spawner_for(site, index: int) -> tuple[str, dict]:
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
            # a server not forked with a kernel parent (a container, a Slurm job) forks its own
            **({WARM_KERNELS: "1"} if profile.fast_start else {}),
            **site.spawner.environment,
            **profile.environment,
        },
    }
    for field, trait in (("cpu", "cpu_limit"), ("memory", "mem_limit")):
        if getattr(profile, field) is not None:
            config[trait] = getattr(profile, field)
    return backend_of(profile).spawner(site, index, profile, config)


def used(site) -> list[Backend]:
    """The backends the site's profiles use, each once."""
    return list(dict.fromkeys(backend_of(p) for p in site.profiles))
