"""A server's own temporary folder: ``TMPDIR`` for the server, its kernels and terminals, that only its user can open.

On a shared host (``local`` servers of system users, Slurm jobs on a shared node) ``/tmp`` is everyone's, and a name
in it that anyone can work out is one another user can take first: as a folder of theirs that all can write to, or
as a link. ipykernel's debugger writes the cells it debugs to ``/tmp/ipykernel_PID``; PyTorch compiles to
``/tmp/torchinductor_USER``. So each server makes a folder of its own (``mkdtemp``: a name no one can guess, 0700)
before it starts anything, in the ``TMPDIR`` its user had (``/tmp`` without one), and its kernels and terminals
inherit it. It is removed when the server ends (by its kernel parent, or the server itself without one).

Standard library only: the fork server's child imports it before it becomes the server.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile

PREFIX = "campushub-tmp-"
#: this server's folder, once :func:`make_own` made it (inherited by the kernel parent it forks)
folder = ""


def make_own() -> str:
    """Make this server's temporary folder and point ``TMPDIR`` (and :mod:`tempfile`) at it; its path, or ``""``
    (with a line on stderr) where none could be made, and temporary files go where they did."""
    global folder
    tempfile.tempdir = None  # as the user's own environment says, not as a parent that looked before found
    try:
        made = tempfile.mkdtemp(prefix=PREFIX)
    except OSError as e:
        where = os.environ.get("TMPDIR", "/tmp")
        print(
            f"campushub: temporary files go to {where}, as for everyone: no folder of the server's ({e})",
            file=sys.stderr,
        )
        return ""
    os.environ["TMPDIR"] = tempfile.tempdir = folder = made
    return made


def remove_own():
    """Remove the folder :func:`make_own` made, with all in it (as its user: links in it are removed, not followed)."""
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def users_alone(path: str):
    """Make the folder ``path`` (0700), or take the one there if it is this user's alone: a folder (not a link), of
    theirs, that no one else can open. Raises :class:`PermissionError` for anything else."""
    try:
        os.mkdir(path, 0o700)
        return
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{path} is not a folder of this user's alone: another user may have made it")
