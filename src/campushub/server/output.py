"""Where a ``local`` server's output goes: a log of the user's own, never the hub's log.

A process started by the hub inherits the hub's standard output and error (its log file, or its journal stream
under systemd), and so would every kernel of the server: a user's code could then write lines into the hub's log
that look like the hub's own (a sign-in, an admin's token) or fill the disk it writes to. So a ``local`` server,
as its user and before any of the user's code runs, sends its output to :data:`FILE` in its folder (its home, or
``state_dir/home/NAME`` for servers as the hub's account), made anew at each start and readable by the user alone:
its kernel parent and kernels inherit it. The home page shows its last lines when the server ends by itself or
fails to start. Standard library only (and userfile's open, which is too): a child of the fork server and the hub's
own ``preexec_fn`` both call it.
"""

from __future__ import annotations

import contextlib
import os
import sys

from .userfile import open_regular

#: the server's log, in its folder
FILE = ".campushub-server.log"


def output_to(path: str, stdin: bool = False):
    """Send this process's standard output and error to the regular file ``path``, opened as this process's
    account (never through a symlink, a FIFO or a device), emptied, 0600; to nothing when it cannot be, with a
    line saying why on the output it replaces. With ``stdin``, standard input becomes nothing too."""
    try:
        fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.ftruncate(fd, 0)
            os.fchmod(fd, 0o600)
            os.set_blocking(fd, True)
        except OSError:
            os.close(fd)
            raise
    except OSError as e:
        print(f"campushub: the server's output goes nowhere: {path}: {e.strerror or e}", file=sys.stderr)
        fd = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    if stdin:
        nothing = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nothing, 0)
        os.close(nothing)
