"""Python kernels forked from the user's kernel parent, which the server's fork left ready.

A server forked by :mod:`campushub.server.forkserver` starts, before its own event loop, a kernel
parent that has ipykernel imported already (it is a copy of the pre-imported server), as the
user. This kernel provisioner asks it for the default Python kernel (this Python, ``-m
ipykernel_launcher``); every other kernel (a conda environment's, another language's), and
every kernel of a server started the normal way, is launched as jupyter_client always does. Every kernel of this
Python, forked or not, runs campushub's kernel class, whose debugger answers only the kernel itself
(:mod:`campushub.server.debugger`).

A forked kernel chooses its own ports the first time it starts. jupyter_client chooses a kernel's ports by binding
and closing them, and the kernel binds them again once it runs; another server's kernel, started at the same moment,
could take one in between (one kernel in a class of 100 opening theirs together never started), and every restart
reused the ports it had lost. Here the kernel is given port 0 for each, binds ports nobody holds (ZeroMQ's
``bind_to_random_port``), and writes them into its connection file, where the server reads them before it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping

from jupyter_client.connect import port_names
from jupyter_client.provisioning import LocalProvisioner
from jupyter_client.provisioning.local_provisioner import LocalPortCache
from jupyter_core.paths import secure_write

from ..ops import processes
from .forkserver import KERNEL_CLASS_OPTION, KERNEL_PARENT, _receive, _send

_LOCK = threading.Lock()
_PARENT: socket.socket | None = None


class ForkedKernel:
    """The parts of ``Popen`` jupyter_client uses, for a kernel its parent forked (and reaps)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not processes.running(self.pid):
            self.returncode = 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"kernel {self.pid} still runs")
            time.sleep(0.05)
        return self.returncode or 0

    def send_signal(self, signum: int):
        """As ``Popen.send_signal``: nothing once the kernel has ended (the restarter signals a kernel that died
        before it starts another; an error here left the user's kernel dead)."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)


class ForkedKernelProvisioner(LocalProvisioner):
    """LocalProvisioner that forks this Python's ipykernel from the kernel parent when there is one."""

    #: how long a forked kernel may take to bind its ports before its start fails
    bind_timeout = 60.0
    #: the kernel manager's ports are ones a kernel of this provisioner bound itself (restarts keep them, as
    #: jupyter_client's do: the server's open channels stay connected to them)
    _own_ports = False
    #: a kernel was forked for this provisioner before (jupyter_server watches its activity since)
    _launched = False

    async def launch_kernel(self, cmd: list[str], **kwargs):
        km = self.parent
        cmd = with_campushubs_kernel(cmd)
        if km is None or not (os.environ.get(KERNEL_PARENT) and _is_this_ipykernel(cmd)):
            return await super().launch_kernel(cmd, **kwargs)
        choose = km.transport == "tcp" and km.cache_ports and not self._own_ports
        if choose:
            _write_connection_file(km.connection_file, {name: 0 for name in port_names})
        env = {k: v for k, v in (kwargs.get("env") or os.environ).items() if k != KERNEL_PARENT}
        request = {
            "argv": [cmd[0], *cmd[3:]],
            # the server, as jupyter_client tells a kernel it launches (its parent is the kernel parent)
            "env": {**env, "JPY_PARENT_PID": str(os.getpid())},
            "cwd": str(kwargs.get("cwd") or os.getcwd()),
        }
        try:
            pid = await asyncio.to_thread(_ask, request)
        except OSError as e:
            self.log.warning("Starting a kernel the normal way: its parent cannot be reached (%s)", e)
            if choose:
                _write_connection_file(km.connection_file, self.connection_info)
            return await super().launch_kernel(cmd, **kwargs)
        kernel = ForkedKernel(pid)
        self.process = kernel  # type: ignore[assignment]  # what the provisioner uses of a Popen
        self.pid = self.pgid = pid  # the kernel leads its own session: signals reach its children too
        self.cwd = request["cwd"]
        restart, self._launched = self._launched, True
        if choose:
            await self._take_the_kernels_ports(km, kernel)
            if restart and self._own_ports:
                _watch_the_new_ports(km)
        elif km.transport == "tcp" and not await _listening(dict(self.connection_info), kernel):
            self._own_ports = False  # it ended as it started (a port was taken while it was down): choose again
        return self.connection_info

    async def _take_the_kernels_ports(self, km, kernel: ForkedKernel):
        """Wait for the ports the kernel bound, and make them the manager's (or leave its own if the kernel ended)."""
        ports = await _bound_ports(km.connection_file, kernel, self.bind_timeout)
        if ports is None:
            # the manager checks the file against what this returns; the restarter starts the kernel again
            _write_connection_file(km.connection_file, self.connection_info)
            if kernel.poll() is None:
                kernel.kill()
                raise RuntimeError(f"kernel {kernel.pid} did not bind its ports within {self.bind_timeout:.0f} s")
            return
        lpc = LocalPortCache.instance()
        for name in port_names:  # the ports jupyter_client chose, and the kernel did not use
            lpc.return_port(getattr(km, name))
            setattr(km, name, ports[name])
        self.connection_info = km.get_connection_info()
        self._own_ports = True


def _write_connection_file(path: str, changes: Mapping):
    """Rewrite the kernel's connection file (which jupyter_client wrote) with ``changes``, for the kernel's owner
    only."""
    with open(path) as f:
        info = json.load(f)
    info.update({name: changes[name] for name in port_names})
    with secure_write(path) as f:
        json.dump(info, f, indent=2)


async def _bound_ports(path: str, kernel: ForkedKernel, timeout: float) -> dict | None:
    """The ports the kernel wrote into its connection file once it had bound them; None if it ended first, or
    ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and kernel.poll() is None:
        with contextlib.suppress(OSError, ValueError):  # a file the kernel is writing can be read half-written
            with open(path) as f:
                info = json.load(f)
            if all(info.get(name) for name in port_names):
                return {name: info[name] for name in port_names}
        await asyncio.sleep(0.005)
    return None


def _watch_the_new_ports(km):
    """Point the server's activity watcher at a restarted kernel's new ports: jupyter_server follows new ports only
    for a restart asked through its API, not for its restarter's."""
    servers_kernels = km.parent
    if hasattr(servers_kernels, "start_watching_activity") and km.kernel_id in servers_kernels:
        servers_kernels.stop_watching_activity(km.kernel_id)
        servers_kernels.start_watching_activity(km.kernel_id)


async def _listening(info: dict, kernel: ForkedKernel, timeout: float = 10) -> bool:
    """Whether the kernel listens on its IOPub port (waiting until it does, or has ended, or ``timeout`` passed).

    For a restart that keeps the kernel's ports. A fork returns before the kernel has bound its ports. The server's
    activity watcher subscribes to IOPub as soon as this returns; a subscriber that connects before the bind retries
    only after ZeroMQ's reconnect interval, and missed the status of the first kernel_info request, so a client's
    first execute waited for jupyter_server's second nudge, half a second later (12 of 20 new kernels,
    docs/fast-start.md). The listener must be the kernel itself: another process that took the port while the kernel
    was down would answer a connection too.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and kernel.poll() is None:
        held = processes.listens(kernel.pid, info["iopub_port"])
        if held is None:  # this host does not say who listens: whatever answers, while the kernel runs
            held = await _connects(info.get("ip") or "127.0.0.1", info["iopub_port"]) and kernel.poll() is None
        if held:
            return True
        await asyncio.sleep(0.005)
    return kernel.poll() is None


async def _connects(ip: str, port: int) -> bool:
    """Whether something accepts a TCP connection on ``port`` (where this host does not say who listens)."""
    try:
        _reader, writer = await asyncio.open_connection(ip, port)
    except OSError:
        return False
    writer.close()
    return True


def with_campushubs_kernel(cmd: list[str]) -> list[str]:
    """A kernel's command line, with campushub's kernel class if it is this Python's ipykernel (another Python, a
    conda environment's, may not have campushub)."""
    if _is_this_ipykernel(cmd) and KERNEL_CLASS_OPTION not in cmd:
        return [*cmd, KERNEL_CLASS_OPTION]
    return cmd


def _is_this_ipykernel(cmd: list[str]) -> bool:
    return (
        len(cmd) >= 3
        and cmd[1:3] == ["-m", "ipykernel_launcher"]
        and os.path.realpath(cmd[0]) == os.path.realpath(sys.executable)
    )


def _ask(request: dict) -> int:
    """One kernel from the parent: the request, then its pid (one request at a time)."""
    global _PARENT
    with _LOCK:
        if _PARENT is None:
            _PARENT = socket.socket(fileno=int(os.environ[KERNEL_PARENT]))
        _send(_PARENT, request)
        return _receive(_PARENT)["pid"]
