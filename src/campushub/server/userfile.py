"""The end of a file in a user's folder, read as that user and within bounds (a Slurm job's log, for "why it ended").

The hub never opens a path a user controls itself: as root it would follow the user's symlink to
``/etc/shadow`` or to the hub's cookie secret, and a link to ``/dev/zero`` or a FIFO would fill its memory or
hold it. So this module runs as the user (``sudo -u USER``, or a child of a root hub that becomes the
user first), as ``python -I -m campushub.server.userfile PATH``: it opens the path without following a final
symlink, reads regular files only, and at most :data:`MAX_BYTES` from their end. Whatever the user does to
that process, the hub reads at most :data:`MAX_BYTES` of what it prints, for at most :data:`TIMEOUT` seconds.
"""

from __future__ import annotations

import asyncio
import errno
import os
import pwd
import stat
import sys
from typing import Any

MAX_BYTES = 16 * 1024
LINES = 15
TIMEOUT = 10  # s


def open_regular(path: str, flags: int, mode: int = 0o600) -> int:
    """A descriptor of the regular file ``path``, opened with ``flags`` (without blocking): never through a final
    symlink, and never a FIFO or a device, which could hold or flood whoever opens it. OSError otherwise."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
    except OSError:
        os.close(fd)
        raise
    return fd


def tail(path: str, lines: int = LINES) -> str:
    """The last ``lines`` lines of the regular file ``path`` (not a symlink, FIFO or device), from its last
    :data:`MAX_BYTES`. In the user's own process."""
    fd = open_regular(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        os.lseek(fd, max(0, info.st_size - MAX_BYTES), os.SEEK_SET)
        data = os.read(fd, MAX_BYTES)
    finally:
        os.close(fd)
    return b"\n".join(data.splitlines()[-lines:]).decode(errors="replace")


async def read_tail(user: str, path: str, prefix: list[str]) -> str:
    """The end of ``user``'s file ``path``, read as ``user``: through ``prefix`` (``sudo -u USER``), or, with
    none, by a child that this (root) hub turns into the user. "" when it cannot be read that way: never as
    the hub's own account."""
    account = pwd.getpwnam(user)
    switch: dict[str, Any] = {}
    if not prefix:
        if os.geteuid() != 0:
            return ""
        switch = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    process = await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        "-I",
        "-m",
        "campushub.server.userfile",
        path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        cwd="/",
        start_new_session=True,
        **switch,
    )
    try:
        assert process.stdout is not None  # a pipe, asked for above
        out = await asyncio.wait_for(_read(process.stdout, MAX_BYTES), TIMEOUT)
        await asyncio.wait_for(process.wait(), 1)
    except TimeoutError:  # it holds on, or says more than it may: nothing of it is believed
        out = b""
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return out.decode(errors="replace").strip() if process.returncode == 0 else ""


async def _read(stream: asyncio.StreamReader, limit: int) -> bytes:
    """What ``stream`` gives until its end, or ``limit`` bytes."""
    data = b""
    while len(data) < limit:
        chunk = await stream.read(limit - len(data))
        if not chunk:
            break
        data += chunk
    return data


def main():
    try:
        print(tail(sys.argv[1]))
    except OSError as e:
        print(f"(the log cannot be read: {e.strerror or e})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
