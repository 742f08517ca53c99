"""Python kernels forked from the user's kernel parent, which the server's fork left ready.

A server forked by :mod:`campushub.server.forkserver` starts, before its own event loop, a kernel
parent that has ipykernel imported already (it is a copy of the pre-imported server), as the
user. This kernel provisioner asks it for the default Python kernel (this Python, ``-m
ipykernel_launcher``); every other kernel (a conda environment's, another language's), and
every kernel of a server started the normal way, is launched as jupyter_client always does. Every kernel of this
Python, forked or not, runs campushub's kernel class, whose debugger answers only the kernel itself
(:mod:`campushub.server.debugger`).

A forked kernel's channels are Unix sockets (ZeroMQ's ``ipc`` transport) in a folder that only its user can open
(made and removed by their kernel parent: :func:`campushub.server.forkserver.sockets_folder`), instead of TCP ports
on the host's loopback: no other account can connect to them, so they need no encryption (CurveZMQ cost each kernel
about a fifth of its CPU), and no port is chosen for them that another process could take first (jupyter_client
chooses a kernel's ports by binding and closing them; another server's kernel started at the same moment could bind
one in between). The server connects once the kernel has bound its IOPub socket. Kernels started the normal way keep
TCP on the loopback, encrypted where they can be (docs/authentication.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import threading
import time

from jupyter_client.provisioning import LocalProvisioner

from ..ops import processes
from .forkserver import KERNEL_CLASS_OPTION, KERNEL_PARENT, KERNEL_SOCKETS, _receive, _send

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

    #: how long a forked kernel may take to bind its sockets before its start fails
    bind_timeout = 60.0

    async def pre_launch(self, **kwargs):
        km = self.parent
        if km is not None and KERNEL_SOCKETS in os.environ and _is_this_ipykernel(km.format_kernel_cmd()):
            if km.transport != "ipc":  # its first start: a restart keeps the sockets the server's channels know
                km.transport, km.cache_ports = "ipc", False
                # a name of its own, not the kernel's id: a client may choose that (POST /api/kernels)
                km.ip = os.path.join(os.environ[KERNEL_SOCKETS], secrets.token_hex(8))
            kwargs["transport_encryption"] = "disabled"  # no other account can reach the sockets
        return await super().pre_launch(**kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs):
        km = self.parent
        cmd = with_campushubs_kernel(cmd)
        if km is None or km.transport != "ipc" or not (os.environ.get(KERNEL_PARENT) and _is_this_ipykernel(cmd)):
            return await super().launch_kernel(cmd, **kwargs)
        iopub = f"{km.ip}-{km.iopub_port}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(iopub)  # a killed kernel's socket: what is waited for below is the new kernel's
        env = {k: v for k, v in (kwargs.get("env") or os.environ).items() if k not in (KERNEL_PARENT, KERNEL_SOCKETS)}
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
            return await super().launch_kernel(cmd, **kwargs)
        kernel = ForkedKernel(pid)
        self.process = kernel  # type: ignore[assignment]  # what the provisioner uses of a Popen
        self.pid = self.pgid = pid  # the kernel leads its own session: signals reach its children too
        self.cwd = request["cwd"]
        if not await _bound(iopub, kernel, self.bind_timeout) and kernel.poll() is None:
            kernel.kill()
            raise RuntimeError(f"kernel {pid} did not bind its sockets within {self.bind_timeout:.0f} s")
        return self.connection_info  # a kernel that ended is started again by the server's restarter


async def _bound(path: str, kernel: ForkedKernel, timeout: float) -> bool:
    """Whether the kernel bound its socket at ``path`` (waiting until it has, or has ended, or ``timeout`` passed).

    A fork returns before the kernel has bound its sockets. The server's activity watcher subscribes to IOPub as
    soon as the start returns; a subscriber that connects before the bind retries only after ZeroMQ's reconnect
    interval, and missed the status of the first kernel_info request, so a client's first execute waited for
    jupyter_server's second nudge, half a second later (docs/fast-start.md). ZeroMQ makes the socket's file as it
    binds, in a folder only the kernel's user can write.
    """
    deadline = time.monotonic() + timeout
    while kernel.poll() is None:
        if os.path.exists(path):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.002)
    return False


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
