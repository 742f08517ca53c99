"""Python kernels forked from the user's kernel parent, which the server's fork left ready.

A server forked by :mod:`campushub.server.forkserver` starts, before its own event loop, a kernel
parent that has ipykernel imported already (it is a copy of the pre-imported server), as the
user. This kernel provisioner asks it for the default Python kernel (this Python, ``-m
ipykernel_launcher``); every other kernel (a conda environment's, another language's), and
every kernel of a server started the normal way, is launched as jupyter_client always does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
import time

from jupyter_client.provisioning import LocalProvisioner

from .forkserver import KERNEL_PARENT, _receive, _send

_LOCK = threading.Lock()
_PARENT: socket.socket | None = None


class ForkedKernel:
    """The parts of ``Popen`` jupyter_client uses, for a kernel its parent forked (and reaps)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
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

    async def launch_kernel(self, cmd: list[str], **kwargs):
        if not (os.environ.get(KERNEL_PARENT) and _is_this_ipykernel(cmd)):
            return await super().launch_kernel(cmd, **kwargs)
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
            return await super().launch_kernel(cmd, **kwargs)
        kernel = ForkedKernel(pid)
        self.process = kernel  # type: ignore[assignment]  # what the provisioner uses of a Popen
        self.pid = self.pgid = pid  # the kernel leads its own session: signals reach its children too
        self.cwd = request["cwd"]
        await _listening(dict(self.connection_info), kernel)
        return self.connection_info


async def _listening(info: dict, kernel: ForkedKernel, timeout: float = 10):
    """Return once the kernel listens on its IOPub port (or has ended, or ``timeout`` passed).

    A fork returns before the kernel has bound its ports. The server's activity watcher subscribes to IOPub as soon
    as this returns; a subscriber that connects before the bind retries only after ZeroMQ's reconnect interval, and
    missed the status of the first kernel_info request, so a client's first execute waited for jupyter_server's
    second nudge, half a second later (12 of 20 new kernels, docs/fast-start.md).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and kernel.poll() is None:
        try:
            _reader, writer = await asyncio.open_connection(info.get("ip") or "127.0.0.1", info["iopub_port"])
        except OSError:
            await asyncio.sleep(0.005)
            continue
        writer.close()
        return


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
