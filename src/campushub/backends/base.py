"""What every profile has, and what a backend slice provides."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from ..sitefile.choices import Choices, named, size_words
from ..sitefile.fields import ByteSize, Model, Name, byte_count

if TYPE_CHECKING:
    from ..sitefile.model import Site


class ProfileBase(Model):
    """Keys every profile takes, whatever its backend."""

    slug: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=63)] = Field(
        description='short id (`a-z0-9_-`), unique; what the API takes as `{"profile": "slug"}`'
    )
    name: Name = Field(description="what users see in the menu")
    description: Annotated[str, Field(max_length=300)] = Field(
        "", description="a sentence under the name on the start page (plain text): what the profile is for"
    )
    cpu: Annotated[float, Field(gt=0)] | None = Field(None, description="CPU limit (cores, may be fractional)")
    memory: ByteSize | None = Field(None, description="memory limit, as JupyterHub writes it: `512M`, `4G`")
    environment: dict[str, str] = Field(
        {}, description="variables for this profile's servers, merged over `spawner.environment`"
    )
    groups: list[Name] = Field(
        [], description="groups allowed to use it; empty: everyone. Enforced by the hub (403), not only hidden"
    )
    default: bool = Field(
        False,
        description="the profile used when a request names none (at most one; else the"
        " first). Must be open to everyone",
    )
    fast_start: bool = Field(
        True,
        description="Python kernels forked from a parent that has imported ipykernel (the first in a few tenths of a"
        " second instead of one or more); `local` servers too are forked, from a parent that has imported"
        " JupyterLab: about a tenth of a second each instead of seconds. `false`: each started the normal way",
    )


@dataclass
class Known:
    """What the hub's database says, for ``doctor``: its users, and each server it runs (or starts), by (user,
    server name), with its saved state and when it started (a ``time.time()``)."""

    users: set[str]
    servers: dict[tuple[str, str], dict]
    started: dict[tuple[str, str], float]

    def owner(self, user: str) -> bool:
        """Whether ``user`` has a server the hub runs."""
        return any(owner == user for owner, _name in self.servers)


class Backend:
    """A backend slice: subclass it in ``backends/NAME.py`` and list the instance in ``backends/__init__.py``.

    ``profile`` is the slice's profile model (with ``backend: Literal[NAME]``); ``defaults``, when
    set, is a site-file section named after the backend, shared by its profiles.
    """

    name: str
    profile: type[ProfileBase]
    defaults: type[Model] | None = None
    #: the choices its profiles may offer users (``choices:``), and what each becomes
    choices: type[Choices]
    #: users' servers outlive the hub (containers, jobs): a hub restart must leave them running
    persistent = False
    #: servers start on the hub's machine, using its CPUs: starts take turns (campushub.hub.turns.Admission)
    takes_turns = False

    def card(self, site: Site, profile) -> dict[str, str]:
        """What the start page says about ``profile``: ``gets`` (resources), ``runs`` (where, as whom), ``keeps``."""
        return {"gets": limits_words(profile, [])}

    def stops(self, profile) -> list[str]:
        """When servers stop by themselves, besides the culler (a job's time limit), for the start page."""
        return []

    def on_hub_host(self, site: Site) -> bool:
        """Whether users' code may run on the hub's own host (and reach the hub's ports from a trusted address)."""
        return False

    def needs_account(self, profile) -> bool:
        """Whether servers run as the user's own system account (which must exist)."""
        return False

    def as_hub_account(self, profile) -> bool:
        """Whether servers run as the hub's own account (sharing its files and secrets)."""
        return False

    def resolve_paths(self, site: Site, folder):
        """Make the defaults' relative paths relative to the site file's ``folder``."""

    def problems(self, site: Site, index: int, profile) -> list[str]:
        """``field.path: reason`` lines for ``profile``, which is ``site.profiles[index]``."""
        if profile.choices is None:
            return []
        found = profile.choices.problems(f"profiles.{index}.choices")
        for name in profile.choices.declared():
            if getattr(profile, name, None) is not None:
                found.append(f"profiles.{index}.{name}: set either {name} or choices.{name}, not both")
        return found

    def choice_settings(self, settings: dict, chosen: dict) -> dict:
        """Spawner settings for chosen values (typed: CPUs, bytes, minutes, names), over ``settings``."""
        return {}

    async def user_options_for(self, settings: dict, user: str, name: str) -> list[str]:
        """The options of a choice that depend on the user (a Slurm account of theirs)."""
        return []

    def warnings(self, site: Site, index: int, profile) -> list[str]:
        """What will work, but not as an admin might assume."""
        return []

    def preflight(self, site: Site, profiles: list[tuple[int, ProfileBase]]) -> list[str]:
        """Problems only the services can show (an engine's images); asked by ``check`` and ``up``."""
        return []

    def doctor(self, site: Site, known: Known | None) -> list[str]:
        """What ``doctor`` finds wrong with this backend's service, and what it left that no server of the hub owns
        (``known``: what the hub's database says; None when it cannot be read)."""
        return []

    def install(self, site: Site):
        """In the hub's own process, when any profile uses this backend: its API handlers, its warm-ups."""

    def spawner_class(self, profile) -> str:
        """The dotted name of the spawner class that runs ``profile``."""
        raise NotImplementedError

    def spawner(self, site: Site, index: int, profile, config: dict) -> tuple[str, dict]:
        """The spawner class and its complete settings; ``config`` holds the shared ones."""
        raise NotImplementedError


def limits_words(profile, extra: list[str], enforced: bool = True) -> str:
    """The profile's CPUs, memory (and ``extra``) in words; choices are named, their bounds are in the form."""
    fixed, chosen = [], []
    for name in ("cpu", "memory"):
        value = getattr(profile, name)
        if profile.choices is not None and getattr(profile.choices, name, None) is not None:
            chosen.append(name)
        elif name == "cpu" and value is not None:
            fixed.append(f"{value:g} CPU" + ("" if value == 1 else "s"))
        elif value is not None:
            fixed.append(f"{size_words(byte_count(value))} of memory")
    parts = fixed + extra
    if chosen:
        parts.append(f"{named(chosen)} as you choose below")
    if not parts:
        return "no fixed limits: it shares the machine with others"
    return ", ".join(parts) + ("" if enforced or not fixed else " (a guide: not enforced on this machine)")


def limits(chosen: dict) -> dict:
    """JupyterHub's cpu_limit and mem_limit for chosen CPUs and memory."""
    found = {}
    if "cpu" in chosen:
        found["cpu_limit"] = float(chosen["cpu"])
    if "memory" in chosen:
        found["mem_limit"] = int(chosen["memory"])
    return found


def keep_state(spawner, ip: str | None = None, port: int | None = None):
    """Have the hub save ``spawner``'s state now, in the middle of its start, once it made what it must stop
    later (a process, a job): the profiles spawner that wraps it gives it ``keep_state``; alone, nothing."""
    keep = getattr(spawner, "keep_state", None)
    if keep is not None:
        keep(ip, port)


#: how often :func:`until_listening` tries to connect, and looks whether the server still runs
CONNECT_EVERY, ALIVE_EVERY = 0.02, 1.0


async def until_listening(ip: str, port: int, limit: float, running) -> None:
    """Wait, up to ``limit`` seconds, until a starting server accepts connections at ``ip:port``.

    JupyterHub looks for a server that its spawner has started with growing, random waits (about 0.1, 0.3,
    0.7, 1.5 s): one that answers 0.7 s after its start is found up to 0.8 s later. A spawner that waits here
    first is found at JupyterHub's first look. Returns early when ``running()`` (asked every second) says the
    server has ended, and at ``limit``: JupyterHub's own wait then says what went wrong.
    """
    deadline = time.monotonic() + limit
    next_look = time.monotonic() + ALIVE_EVERY
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), ALIVE_EVERY)
        except (OSError, TimeoutError):
            pass
        else:
            writer.close()
            return
        if time.monotonic() > next_look:
            if not await running():
                return
            next_look = time.monotonic() + ALIVE_EVERY
        await asyncio.sleep(CONNECT_EVERY)
