"""What ``/proc`` says about a process: its command line, its account, whether it is (still) a given program;
and which process listens on a port."""

from __future__ import annotations

import os
import pwd
from pathlib import Path


def _listening_sockets(port: int) -> set[str]:
    """The ``socket:[INODE]`` links of the TCP sockets listening on ``port`` (IPv4 and IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    return inodes


def _holds(pid: int | str, inodes: set[str]) -> bool:
    return any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd"))


def holder_of(port: int) -> str | None:
    """``pid N, ACCOUNT: command`` of the process listening on TCP ``port``, when this account can see it."""
    inodes = _listening_sockets(port)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if _holds(pid, inodes):
                return f"pid {pid}, {owner_of(pid)}: {command_of(pid)[:80]}"
        except OSError:
            continue
    return None


def listens(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds a socket listening on TCP ``port``; None when this account cannot tell."""
    inodes = _listening_sockets(port)
    if not inodes:
        return False
    try:
        return _holds(pid, inodes)
    except PermissionError:
        return None
    except OSError:  # the process is gone
        return False


def owner_of(pid: int | str) -> str:
    """The account a process runs as (its name, else its uid)."""
    uid = os.stat(f"/proc/{pid}").st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def command_of(pid: int | str) -> str:
    """A process's command line as ``ps`` shows it (a forked server's own, not the fork server's)."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()[:4096]
    return " ".join(raw.decode(errors="replace").replace("\0", " ").split())


def runs(pid: int, program: str) -> bool:
    """Whether ``pid`` runs and its command line names ``program`` (a zombie has no command line; a pid reused by
    another program does not name it)."""
    try:
        return program in command_of(pid)
    except OSError:
        return False
