"""What every profile has, and what a backend slice provides."""

from __future__ import annotations

import pwd
from typing import TYPE_CHECKING, Annotated

from jupyterhub.spawner import SpawnException
from pydantic import Field
from traitlets import Integer, List, Unicode
from traitlets.config import Configurable

from .. import accounts
from ..choices import Choices, named, size_words
from ..fields import ByteSize, Model, Name, byte_count

if TYPE_CHECKING:
    from ..site import Site


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
    #: servers start on the hub's machine, using its CPUs: starts take turns (campushub.profiles.Admission)
    takes_turns = False

    def card(self, site: Site, profile) -> dict[str, str]:
        """What the start page says about ``profile``: ``gets`` (resources), ``runs`` (where, as whom), ``keeps``."""
        return {"gets": limits_words(profile, [])}

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

    def configure_hub(self, c, site: Site):
        """Hub-wide config this backend needs when any profile uses it."""

    def spawner_class(self, profile) -> str:
        """The dotted name of the spawner class that runs ``profile``."""
        raise NotImplementedError

    def spawner(self, site: Site, index: int, profile, config: dict) -> tuple[str, dict]:
        """The spawner class and its complete settings; ``config`` holds the shared ones."""
        raise NotImplementedError


class OwnAccount(Configurable):
    """A spawner whose servers run as the user's own system account: never as one that is not a person's.

    The profiles spawner refuses such names first, in words; each backend's spawner checks again before anything
    runs. Configured once for all of them (``c.OwnAccount``) from the site's ``accounts`` section.
    """

    min_uid = Integer(1000, config=True, help="The lowest uid a server may run as.")
    denied_accounts = List(Unicode(), config=True, help="Names that never get a server as their own account.")

    def own_account(self) -> pwd.struct_passwd:
        """The user's account, or a refused start (403, in words) for a system or service account."""
        why = accounts.refusal(self.user.name, self.min_uid, self.denied_accounts)
        if why:
            raise SpawnException(why, reason="not-a-person", status_code=403)
        return pwd.getpwnam(self.user.name)


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
