"""A server's own temporary folder (campushub.server.temporary), and the debugger's check of the folder it writes
cells to. The service tests (test_shared_host_kernels.py) show both against another user's code."""

import os
import stat
import tempfile

import pytest

from campushub.server import temporary


@pytest.fixture
def own(monkeypatch, tmp_path):
    """:func:`temporary.make_own` with ``TMPDIR`` at ``tmp_path``; the process's TMPDIR and tempfile as they were
    after the test."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", "/somewhere/a/parent/looked")
    monkeypatch.setattr(temporary, "folder", "")
    return temporary.make_own()


def test_the_server_gets_a_folder_of_its_own_in_its_users_tmpdir(own, tmp_path):
    assert os.path.dirname(own) == str(tmp_path) and os.path.basename(own).startswith(temporary.PREFIX)
    assert stat.S_IMODE(os.lstat(own).st_mode) == 0o700
    assert os.environ["TMPDIR"] == tempfile.gettempdir() == temporary.folder == own
    assert os.path.dirname(tempfile.mkdtemp()) == own


def test_removing_it_removes_links_in_it_and_not_what_they_name(own, tmp_path):
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "file").write_text("the user's")
    os.symlink(kept, os.path.join(own, "link"))
    os.mkdir(os.path.join(own, "ipykernel_1"))
    temporary.remove_own()
    assert not os.path.exists(own)
    assert (kept / "file").read_text() == "the user's"


def test_a_tmpdir_that_is_no_folder_gives_way_to_tmp_as_python_does(monkeypatch, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("TMPDIR", str(not_a_folder))
    monkeypatch.setattr(temporary, "folder", "")
    monkeypatch.setattr(tempfile, "tempdir", None)
    try:
        assert os.path.dirname(temporary.make_own()) == "/tmp"
    finally:
        temporary.remove_own()
    assert not os.path.exists(temporary.folder)


def test_without_a_folder_temporary_files_go_where_they_did_and_it_says_so(monkeypatch, tmp_path, capsys):
    """A host where no folder can be made (tempfile's mkdtemp stands in: as root, every candidate is writable)."""

    def refused(**kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(temporary, "folder", "")
    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    assert temporary.make_own() == ""
    assert os.environ["TMPDIR"] == str(tmp_path) and temporary.folder == ""
    assert f"temporary files go to {tmp_path}, as for everyone" in capsys.readouterr().err
    temporary.remove_own()  # nothing to remove


def test_the_debuggers_folder_is_made_private_or_taken_only_if_private(tmp_path):
    made = tmp_path / "ipykernel_1"
    temporary.users_alone(str(made))
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    temporary.users_alone(str(made))  # its own, again (a second start of the debugger)


@pytest.mark.parametrize("laid_out", ["open to all", "a link", "a file", "another user's"])
def test_the_debugger_takes_no_folder_another_user_could_have_made(tmp_path, monkeypatch, laid_out):
    path = tmp_path / "ipykernel_1"
    if laid_out == "open to all":
        path.mkdir()
        path.chmod(0o777)
    elif laid_out == "a link":
        (tmp_path / "theirs").mkdir(mode=0o700)
        path.symlink_to(tmp_path / "theirs")
    elif laid_out == "a file":
        path.write_text("")
    else:
        path.mkdir(mode=0o700)
        monkeypatch.setattr(os, "getuid", lambda: os.lstat(path).st_uid + 1)
    with pytest.raises(PermissionError, match="not a folder of this user's alone"):
        temporary.users_alone(str(path))
