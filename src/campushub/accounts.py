"""Users' own system accounts: which names may run code as themselves, and making the missing ones.

A profile that runs servers (or Slurm jobs) as the user's own account takes the account of the same name
as the single sign-on gives. An SSO name that happens to be a system account (``root``, ``postgres``,
``munge``, the hub's own) must never get a server: only accounts at or above the floor for people's
uids (``UID_MIN`` of ``/etc/login.defs``) and not on the deny list may.
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

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
