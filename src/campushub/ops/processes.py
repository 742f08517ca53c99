"""What ``/proc`` says about a process: its command line, its account, whether it is (still) a given program;
and which process listens on a port."""

from __future__ import annotations

import os
import pwd
import socket
import struct
from pathlib import Path

#: netlink's socket diagnostics: a dump of the TCP sockets in one state, asked of the kernel (as ``ss -l`` does)
_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, _NLMSG_ERROR, _NLMSG_DONE = 4, 20, 0x301, 2, 3
_TCP_LISTEN = 10
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_REQUEST = struct.Struct("=BBBxI48x")  # inet_diag_req_v2: family, protocol, extensions, states, socket id (any)
_MESSAGE = struct.Struct("=BBBBH62xI")  # inet_diag_msg: family, state, timer, retrans, port (big-endian) .. inode


def _listening_sockets(port: int) -> set[str] | None:
    """The ``socket:[INODE]`` links of the TCP sockets listening on ``port`` (IPv4 and IPv6); None when the kernel
    does not answer.

    Asked of the kernel by netlink for listening sockets only: reading ``/proc/net/tcp`` walks every connection of
    the host (3-4 ms per table even when nearly empty, more with a class's kernels), on the hub's event loop at
    every local start.
    """
    inodes: set[str] = set()
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as diag:
            diag.settimeout(5)
            for family in (socket.AF_INET, socket.AF_INET6):
                request = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 1 << _TCP_LISTEN)
                header = _HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, 1, 0)
                diag.send(header + request)
                inodes |= _dumped(diag, port)
    except OSError:  # netlink refused here (a sandbox), or an answer that cannot be read
        return None
    return inodes


def _dumped(diag: socket.socket, port: int) -> set[str]:
    """The inodes of the sockets on ``port`` in one netlink dump's answer."""
    found: set[str] = set()
    while True:
        data = diag.recv(65536)
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, kind, _flags, _seq, _pid = _HEADER.unpack_from(data, offset)
            if kind == _NLMSG_DONE:
                return found
            if kind == _NLMSG_ERROR or length < _HEADER.size + _MESSAGE.size:
                raise OSError("the kernel refused the socket diagnostics request")
            _family, _state, _timer, _retrans, sport, inode = _MESSAGE.unpack_from(data, offset + _HEADER.size)
            if socket.ntohs(sport) == port:
                found.add(f"socket:[{inode}]")
            offset += (length + 3) & ~3


def _holds(pid: int | str, inodes: set[str]) -> bool:
    return any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd"))


def holder_of(port: int) -> str | None:
    """``pid N, ACCOUNT: command`` of the process listening on TCP ``port``, when this account can see it."""
    inodes = _listening_sockets(port)
    if not inodes:
        return None
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
    if inodes is None:
        return None
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


def running(pid: int | str) -> bool:
    """Whether ``pid`` exists and has not ended (an ended process its parent has not reaped yet is a zombie, whose
    open files no longer say what it listened on)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def runs(pid: int, program: str) -> bool:
    """Whether ``pid`` runs and its command line names ``program`` (a zombie has no command line; a pid reused by
    another program does not name it)."""
    try:
        return program in command_of(pid)
    except OSError:
        return False
