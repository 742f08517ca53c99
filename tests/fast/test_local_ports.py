"""Local servers and their ports, without a hub: no port is given to two servers at once, and the hub can tell
whether the process listening on a server's port is that server (real sockets and processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from campushub.backends.local import spawner as local
from campushub.ops import processes
from harness import free_port


@pytest.mark.parametrize("family, address", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_the_process_that_listens_on_a_port_is_told_apart_from_any_other(family, address):
    with socket.socket(family) as server:
        server.bind((address, 0))
        server.listen()
        port = server.getsockname()[1]
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert processes.listens(other.pid, port) is False  # a process that does not hold it
            assert processes.listens(os.getpid(), port) is True
        finally:
            other.kill()
            other.wait()
    assert processes.listens(other.pid, free_port()) is False  # nobody listens there


def test_a_socket_bound_to_a_port_or_connected_from_it_is_not_its_listener():
    with socket.socket() as bound, socket.socket() as listener, socket.socket() as client:
        bound.bind(("127.0.0.1", 0))  # bound, never listening
        assert processes.listens(os.getpid(), bound.getsockname()[1]) is False
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client.connect(listener.getsockname())
        connection, _ = listener.accept()
        with connection:  # a connection's local port is not a listening one
            assert processes.listens(os.getpid(), client.getsockname()[1]) is False


def test_the_listener_is_found_among_hundreds_of_the_hosts_listening_sockets():
    """The kernel's answer then comes in several parts (a class's servers and kernels listen on thousands)."""
    listeners = [socket.socket() for _ in range(400)]
    try:
        for listener in listeners:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
        for listener in (listeners[0], listeners[-1]):
            inode = os.fstat(listener.fileno()).st_ino
            assert processes._listening_sockets(listener.getsockname()[1]) == {f"socket:[{inode}]"}
    finally:
        for listener in listeners:
            listener.close()


def test_a_port_given_to_one_server_is_not_given_to_another_until_it_stops(monkeypatch):
    """The operating system's choice of a free port is replaced by a list here: two starts asking at the same moment
    can be told the same free port, which is what this guards against."""
    offered = iter([41001, 41001, 41002])
    monkeypatch.setattr(local, "random_port", lambda: next(offered))
    monkeypatch.setattr(local, "GIVEN", set())
    assert (local.given_port(), local.given_port()) == (41001, 41002)
    local.GIVEN.discard(41001)  # its server stopped
    monkeypatch.setattr(local, "random_port", lambda: 41001)
    assert local.given_port() == 41001


def test_where_the_kernel_will_not_say_who_listens_the_hub_says_it_cannot_tell(monkeypatch):
    """A sandbox that refuses netlink's socket diagnostics cannot be made on these machines: the refusal is stood in
    for here (the socket call raises as a seccomp filter would). "Cannot tell" lets the start go on, as for a process
    the hub may not inspect; it is never "another process holds it"."""
    real_socket = socket.socket

    def refusing(family=-1, *args, **kwargs):
        if family == socket.AF_NETLINK:
            raise PermissionError(1, "Operation not permitted")
        return real_socket(family, *args, **kwargs)

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setattr(processes.socket, "socket", refusing)
        assert processes.listens(os.getpid(), server.getsockname()[1]) is None
        assert processes.holder_of(server.getsockname()[1]) is None


def test_a_process_that_ended_runs_no_more_though_its_parent_has_not_reaped_it():
    """A forked kernel its parent has not reaped yet is a zombie: /proc still has it, but it listens on nothing."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":  # not reaped yet
            assert time.monotonic() < deadline, "the child did not end"
            time.sleep(0.01)
        assert not processes.running(child.pid)
    finally:
        child.wait()
    assert processes.running(os.getpid())
    assert not processes.running(child.pid)  # reaped: gone
