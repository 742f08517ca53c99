"""The kernel's debugger, which nothing but the kernel can reach.

ipykernel's debugger starts debugpy with ``debugpy.listen`` on a loopback port, and debugpy's adapter takes any
client that connects: on a shared host (``local`` and ``slurm`` servers) another user's code could attach to a kernel
whose user had turned JupyterLab's debugger on, and run code as that user (docs/authentication.md). Here the kernel
runs debugpy's debugger (pydevd) in its own process and talks to it over a socket pair, so nothing listens for it:
pydevd's listener, which its API always opens (on a port of the system's choosing), is closed before the pair is
connected. pydevd also asks for an access token that only this kernel holds, on every connection and after every
``disconnect``, so a client that reached it in that moment could run nothing.

The server gives every kernel of its own Python this kernel class (:mod:`campushub.server.kernels`). In a kernel
forked from a kernel parent (:mod:`campushub.server.forkserver`) it also lists for the debugger only the modules the
kernel imported itself: the parent's were listed once, before it forked (:func:`list_parents_modules`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sys

from ipykernel import ipkernel
from ipykernel.debugger import Debugger, DebugpyClient, get_tmp_directory
from ipykernel.ipkernel import IPythonKernel
from tornado.ioloop import IOLoop
from traitlets import Type
from zmq import ROUTING_ID

from . import temporary

#: what the kernel runs, on its main thread as ipykernel runs ``debugpy.listen``, to start pydevd
LISTEN = '__import__("campushub.server.debugger", fromlist=["listen"]).listen()'
HEADER = b"Content-Length: "
SEPARATOR = b"\r\n\r\n"
#: in the parent kernels are forked from, and in what it forks: the names of its modules, and their files
_parents_modules: tuple[frozenset[str], tuple[str, ...]] | None = None


class PairedDebugpyClient(DebugpyClient):
    """ipykernel's client of debugpy, over a socket pair to pydevd in the kernel's process (not a TCP connection
    to debugpy's adapter)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: this end of the pair (the other is pydevd's), set by :func:`listen`
        self.pair: socket.socket | None = None
        self._reading = False
        self._read = b""

    def get_host_port(self):
        """No host or port: ipykernel adds them to ``attach``, and pydevd, already connected, ignores them."""
        return self.debugpy_host, "0"

    def connect_tcp_socket(self):
        """Read pydevd's messages on the kernel's control thread, which calls this (the first time)."""
        if self.pair is not None and not self._reading:
            self._reading = True
            self.pair.setblocking(False)
            IOLoop.current().add_handler(self.pair.fileno(), self._receive, IOLoop.READ)

    def disconnect_tcp_socket(self):
        """Ready for the next ``attach``; the pair stays (pydevd forgot the token at ``disconnect``)."""
        self.init_event = type(self.init_event)()
        self.init_event_seq = -1
        self.wait_for_attach = True

    def _send_request(self, msg):
        content = json.dumps(msg, ensure_ascii=False, allow_nan=False).encode()
        assert self.pair is not None
        self.pair.setblocking(True)
        try:
            self.pair.sendall(HEADER + str(len(content)).encode() + SEPARATOR + content)
        finally:
            self.pair.setblocking(False)

    def _receive(self, fd, events):
        assert self.pair is not None
        try:
            data = self.pair.recv(1 << 16)
        except BlockingIOError:
            return
        if not data:  # pydevd ended
            IOLoop.current().remove_handler(fd)
            return
        self._read += data
        while True:
            head, separator, rest = self._read.partition(SEPARATOR)
            if not separator:
                return
            size = int(head.removeprefix(HEADER))
            if len(rest) < size:
                return
            self._read = rest[size:]
            message = json.loads(rest[:size])
            if message["type"] == "event":
                self._forward_event(message)
            else:
                self.message_queue.message_queue.put_nowait(message)

    async def _handle_init_sequence(self):
        # pydevd answers ``attach`` at once (after its ``initialized`` event); debugpy's adapter answered it only
        # after ``configurationDone``, which the client sends once initialized, and this returned the last answer
        await self.init_event.wait()
        attached = await self._wait_for_response()
        self._send_request({"type": "request", "seq": int(self.init_event_seq) + 1, "command": "configurationDone"})
        await self._wait_for_response()
        return attached


class PairedDebugger(Debugger):
    """ipykernel's debugger, with pydevd in the kernel's process over a socket pair, and a token only it holds."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.access_token = secrets.token_hex(32)
        self.debugpy_client = PairedDebugpyClient(self.log, self.debugpy_client.debugpy_stream, self._handle_event)

    def start(self):
        """As ipykernel starts debugpy (on the kernel's main thread), but with :func:`listen`; then connect."""
        if not self.debugpy_initialized:
            try:  # the cells it debugs are written there: never to a folder another user made first
                temporary.users_alone(get_tmp_directory())
            except OSError as e:
                self.log.error("The debugger did not start: %s", e)
                return False
            content = {"code": LISTEN, "silent": True}
            identity = self.shell_socket.getsockopt(ROUTING_ID)
            self.session.send(self.shell_socket, "execute_request", content, None, identity)
            _ident, msg = self.session.recv(self.shell_socket, mode=0)
            self.debugpy_initialized = msg["content"]["status"] == "ok"
            if not self.debugpy_initialized:
                self.log.error("The debugger did not start: %s", msg["content"].get("evalue"))
                return False
            if _parents_modules is not None:  # once: the kernel's own modules are in the list already
                self.kernel_modules.extend(_parents_modules[1])
        return super().start()

    async def _forward_message(self, msg):
        if msg["command"] == "initialize":  # pydevd answers nothing until it has the token, again after a disconnect
            authorize = {
                "type": "request",
                "seq": msg["seq"],
                "command": "pydevdAuthorize",
                "arguments": {"debugServerAccessToken": self.access_token},
            }
            answer = await self.debugpy_client.send_dap_request(authorize)
            if not answer.get("success"):
                return {**answer, "command": "initialize", "request_seq": msg["seq"]}
        return await super()._forward_message(msg)


class Kernel(IPythonKernel):
    """ipykernel's kernel with :class:`PairedDebugger`; forked, it lists only its own modules as it starts."""

    debugger_class = Type(PairedDebugger)

    def __init__(self, **kwargs):
        if _parents_modules is None:
            super().__init__(**kwargs)
            return
        ipkernel.sys = _SysForAForkedKernel(_parents_modules[0])
        try:
            super().__init__(**kwargs)
        finally:
            ipkernel.sys = sys


def list_parents_modules():
    """In the parent kernels are forked from (the fork server, or a warm kernel parent), once it has imported what
    they use: list its modules and their files, once, for every kernel.

    ipykernel's kernel lists the ``__file__`` of every module in ``sys.modules`` as it starts (the files its debugger
    keeps a user from stepping into). Each read writes the module's reference count, so each forked kernel copied
    the pages of the parent's thousand and more modules (3 MB). A forked kernel lists only the modules it has
    imported since, and its debugger adds the parent's list when it is turned on. A module that a lazy loader has
    not loaded yet is left out (reading its ``__file__`` would load it, here and in every child).
    """
    global _parents_modules
    loaded = {name: module for name, module in sys.modules.copy().items() if type(module).__name__ != "_LazyModule"}
    files = (_file_of(module) for module in loaded.values())
    _parents_modules = (frozenset(loaded), tuple(f for f in files if f))


def _file_of(module) -> str | None:
    """A module's ``__file__``, as ipykernel reads it but without asking a module's ``__getattr__``."""
    try:
        namespace = object.__getattribute__(module, "__dict__")
    except AttributeError:
        return None
    found = namespace.get("__file__") if isinstance(namespace, dict) else None
    return found if isinstance(found, str) else None


class _SysForAForkedKernel:
    """``sys`` as :mod:`ipykernel.ipkernel` sees it while a forked kernel is made: ``sys.modules.copy()`` holds the
    modules that are not the kernel parent's (read without touching the parent's); all else is the real ``sys``."""

    def __init__(self, parents: frozenset[str]):
        self.modules = _ModulesSinceTheFork(parents)

    def __getattr__(self, name):
        return getattr(sys, name)


class _ModulesSinceTheFork:
    """``sys.modules`` whose ``copy()`` holds only the modules not in ``parents``."""

    def __init__(self, parents: frozenset[str]):
        self._parents = parents

    def copy(self) -> dict:
        return {name: sys.modules[name] for name in list(sys.modules) if name not in self._parents}

    def __getattr__(self, name):
        return getattr(sys.modules, name)

    def __getitem__(self, name):
        return sys.modules[name]

    def __contains__(self, name):
        return name in sys.modules

    def __iter__(self):
        return iter(sys.modules)

    def __len__(self):
        return len(sys.modules)


def listen():
    """Start pydevd with the kernel's token, close the listener its API opens, and connect it to the kernel's
    debugger client over a socket pair.

    What ``debugpy.listen(..., in_process_debug_adapter=True)`` does, with the token it cannot pass.
    """
    import debugpy
    import debugpy.server.api  # puts debugpy's own pydevd on the import path
    import pydevd
    from IPython import get_ipython

    debugger = get_ipython().kernel.debugger
    pydevd.settrace(
        host="127.0.0.1",
        port=0,
        suspend=False,
        patch_multiprocessing=False,
        wait_for_ready_to_run=False,
        block_until_connected=False,
        notify_stdin=False,
        access_token=debugger.access_token,
        dont_trace_start_patterns=(os.path.dirname(debugpy.__file__),),
        dont_trace_end_patterns=("debugpy_launcher.py",),
    )
    py_db = pydevd.get_global_debugger()
    py_db.wait_for_server_socket_ready()
    listener = py_db._waiting_for_connection_thread
    listener.do_kill_pydev_thread()
    with contextlib.suppress(OSError):  # an accept() under way keeps listening after its socket is closed: end it
        socket.create_connection(py_db._server_socket_name, timeout=1).close()
    listener.join(5)
    if listener.is_alive():
        raise RuntimeError("pydevd's listener did not close")
    kernels_end, pydevds_end = socket.socketpair()
    py_db.initialize_network(pydevds_end, terminate_on_socket_close=False)
    py_db.authentication.logout()  # forgets whatever a client that reached the listener sent
    debugger.debugpy_client.pair = kernels_end
