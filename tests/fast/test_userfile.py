"""The end of a user's file, read as that user (campushub.server.userfile): here as ``nobody``, by a root test
process, as a root hub reads a user's log. The service tests (test_slurm_trust.py, test_server_output.py) read real
users' logs through a real hub."""

import asyncio
import os
import pwd
import shutil
import tempfile

import pytest

from campushub.server import userfile

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def folder():
    """A folder ``nobody`` can reach, with a file of theirs (0600) and one of root's (0600) in it."""
    path = tempfile.mkdtemp(prefix="campushub-userfile-")
    os.chmod(path, 0o711)
    theirs, roots = os.path.join(path, "theirs.log"), os.path.join(path, "roots")
    for name, owner, text in ((theirs, NOBODY.pw_uid, "first\nlast words\n"), (roots, 0, "root's secret\n")):
        with open(name, "w") as f:
            f.write(text)
        os.chmod(name, 0o600)
        os.chown(name, owner, owner)
    yield theirs, roots
    shutil.rmtree(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="a root hub's read: the fast tests run as root in CI")
def test_a_root_hub_reads_what_the_user_can_read_and_nothing_else(folder):
    theirs, roots = folder
    assert asyncio.run(userfile.read_tail("nobody", theirs, [])) == "first\nlast words"
    assert asyncio.run(userfile.read_tail("nobody", roots, [])) == ""  # theirs to read only: not the hub's either
