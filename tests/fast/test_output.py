"""A local server's output goes to its own log (campushub.server.output), in a process of its own here: the
function replaces the process's standard output and error."""

import os
import stat
import subprocess
import sys

SEND = (
    "import os, subprocess, sys\n"
    "from campushub.server.output import output_to\n"
    "output_to(sys.argv[1], stdin=len(sys.argv) > 2)\n"
    "print('printed'); sys.stdout.flush()\n"
    "os.write(2, b'written\\n')\n"
    "subprocess.run(['sh', '-c', 'echo from-a-child'])\n"
    "print(repr(sys.stdin.read()), file=sys.stderr)\n"
)


def send(path, *more, stdin="kept"):
    return subprocess.run(
        [sys.executable, "-c", SEND, str(path), *more], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_the_process_and_its_children_write_to_the_log_alone(tmp_path):
    log = tmp_path / "server.log"
    out = send(log)
    assert out.returncode == 0 and out.stdout == out.stderr == "", out
    assert log.read_text() == "printed\nwritten\nfrom-a-child\n'kept'\n"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_stdin_becomes_nothing_when_asked(tmp_path):
    log = tmp_path / "server.log"
    assert send(log, "stdin", stdin="the hub's lifeline").returncode == 0
    assert log.read_text().endswith("\n''\n")


def test_each_start_empties_the_log_and_makes_it_private(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("the last server's lines\n" * 1000)
    log.chmod(0o644)
    assert send(log).returncode == 0
    assert log.read_text().startswith("printed\n") and stat.S_IMODE(log.stat().st_mode) == 0o600


def test_a_link_a_fifo_or_a_folder_is_never_written_through(tmp_path):
    """What the user put where the log goes is left as it is; the output goes nowhere, and the line saying so goes
    to the output it replaces (the hub's log): never the user's words, only the path and the reason."""
    kept = tmp_path / "notes.txt"
    kept.write_text("mine\n")
    link = tmp_path / "link.log"
    link.symlink_to(kept)
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.log"
    folder.mkdir()
    for path in (link, fifo, folder):
        out = send(path)
        assert out.returncode == 0, out
        assert out.stderr.startswith(f"campushub: the server's output goes nowhere: {path}: "), out
        assert "printed" not in out.stdout + out.stderr and "from-a-child" not in out.stdout + out.stderr, out
    assert kept.read_text() == "mine\n" and link.is_symlink()
