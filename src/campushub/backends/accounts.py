"""Users' own system accounts: which names may run code as themselves, and making the missing ones.

A profile that runs servers (or Slurm jobs) as the user's own account takes the account of the same name
as the single sign-on gives. An SSO name that happens to be a system account (``root``, ``postgres``,
``munge``, the hub's own) must never get a server: only accounts at or above the floor for people's
uids (``UID_MIN`` of ``/etc/login.defs``) and not on the deny list may.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyterhub.spawner import SpawnException
from traitlets import Integer, List, Unicode
from traitlets.config import Configurable

#: names a system account can have (POSIX's portable ones): the only ones campushub makes accounts for
SYSTEM_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
#: accounts of the services campushub runs or starts beside the hub, refused even above the uid floor
SERVICE_ACCOUNTS = [
    "root",
    "nobody",
    "daemon",
    "www-data",
    "postgres",
    "mysql",
    "munge",
    "slurm",
    "_shibd",
    "campushub",
]
LOGIN_DEFS = Path("/etc/login.defs")


def uid_min(login_defs: Path = LOGIN_DEFS) -> int:
    """The lowest uid of people's accounts on this host (``UID_MIN``; 1000 where it is not said)."""
    try:
        for line in login_defs.read_text().splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0] == "UID_MIN" and fields[1].isdigit():
                return int(fields[1])
    except OSError:
        pass
    return 1000


def has_account(name: str) -> bool:
    """Whether the system knows ``name`` (through NSS: local files, LDAP, SSSD)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def refusal(name: str, min_uid: int, denied: list[str]) -> str:
    """Why ``name`` may not run code as its own account here, in words for its user; "" when it may.

    Refused: a name on the deny list (always with root and the account this process runs as), and an existing
    account below ``min_uid``. A missing account is not refused here (it may be requested, or made).
    """
    try:
        hub = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        hub = ""
    if name in {*denied, "root", hub}:
        return f"{name} is an account of a service on this machine, not a person's: no server runs as it."
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return ""
    if uid < min_uid or uid == 0:
        return (
            f"{name} is a system account on this machine (uid {uid}, below {min_uid}), not a person's: no server"
            " runs as it. If this is your campus name, ask your research computing center."
        )
    return ""


async def make_account(name: str, command: list[str], log: logging.Logger) -> str:
    """Make the system account ``name`` with ``command`` (the name its last argument, run without a shell);
    "" when made, else why not, in words for its user (the log says more)."""
    if not SYSTEM_NAME.match(name):
        return (
            f"{name} is not a name a system account can have (letters a-z, digits, _ and -, 32 at most):"
            " this cluster cannot make you one."
        )
    process = await asyncio.create_subprocess_exec(
        *command, name, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _out, err = await process.communicate()
    if process.returncode:
        log.error("Making the account %s failed (%s): %s", name, process.returncode, err.decode()[-500:])
        return "This cluster could not make your account; the hub's log says why."
    log.info("Made the system account %s", name)
    return ""


class OwnAccount(Configurable):
    """A spawner whose servers run as the user's own system account: never as one that is not a person's.

    The profiles spawner refuses such names first, in words; each backend's spawner checks again before anything
    runs. Configured once for all of them (``c.OwnAccount``) from the site's ``accounts`` section.
    """

    if TYPE_CHECKING:  # the spawner's
        user: Any

    min_uid = Integer(1000, config=True, help="The lowest uid a server may run as.")
    denied_accounts = List(Unicode(), config=True, help="Names that never get a server as their own account.")

    def own_account(self) -> pwd.struct_passwd:
        """The user's account, or a refused start (403, in words) for a system or service account."""
        why = refusal(self.user.name, self.min_uid, self.denied_accounts)
        if why:
            raise SpawnException(why, reason="not-a-person", status_code=403)
        return pwd.getpwnam(self.user.name)
