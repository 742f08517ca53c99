"""A parent that has imported JupyterLab once, and forks each user's server from it in a tenth of a second.

A JupyterLab server spends seconds of CPU importing before it serves anything; on two cores a
class signing in together waits minutes for that. The parent (``python -m campushub.server.forkserver
SOCKET``) imports the single-user server, JupyterLab and the kernel machinery, starts nothing
(no event loop, no threads), and forks a child for each server the hub asks for.

How a server is started, and why the parent never holds a user's secrets::

    hub ── connect (only the parent's own account may: SO_PEERCRED) ─────────> parent
    parent: fork(); the child keeps the connection, the parent closes its copy
    child ── {"pid": N} ──────────────────────────────────────────────────────> hub
    hub ── {"argv", "env" (the user's token), "cwd", "uid", "gid", "groups", "log"} ──> child only
    child: becomes the user (setgroups, setgid, setuid), takes HOME, cwd, umask and env,
           resets signals, reseeds random state, recomputes the user's paths, sends its output
           to the user's own log (campushub.server.output), and runs the
           server (campushub.server.singleuser); before that it forks its own kernel parent

The parent is started with a minimal environment: a forked child's memory (and its
``/proc/PID/environ``) starts as a copy of the parent's, so nothing secret may be in it. It
reaps its children, and exits when the hub's end of its lifeline (stdin) closes; servers it
forked keep running, and the hub finds them by pid as it would any local server.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import os
import random
import select
import shutil
import signal
import site
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import heap, temporary
from .output import output_to

#: jupyter_server's packages whose request handlers every server loads as it starts
SERVER_HANDLERS = [
    "kernelspecs",
    "nbconvert",
    "view",
    "services.api",
    "services.config",
    "services.contents",
    "services.events",
    "services.kernels",
    "services.kernelspecs",
    "services.nbconvert",
    "services.security",
    "services.sessions",
]
#: what every kernel imports as it starts or runs its first cell, after ipykernel itself
KERNEL_STARTS = [
    "IPython.core.debugger",
    "IPython.core.completerlib",
    "IPython.extensions.storemagic",
    "IPython.core.logger",
    "IPython.core.oinspect",
    "faulthandler",
]
#: what the parent imports once, for every child (the kernel's too: kernels are forked from the server)
PRELOAD = [
    "jupyterhub.singleuser",
    "jupyterhub.singleuser.extension",
    "jupyterlab.labapp",
    "jupyter_server.serverapp",
    "jupyter_server_terminals",
    "jupyter_lsp",
    "notebook_shim",
    "jupyter_resource_usage.server_extension",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.debugger",  # debugpy, which every kernel imports
    "campushub.server.debugger",
    "IPython",
    "psutil",
    # what each server or kernel would otherwise import as it starts (found by importing the above, then starting
    # one): the handlers of jupyter_server's services and IPython's debugger and inspector, in every child alike
    *(f"jupyter_server.{name}.handlers" for name in SERVER_HANDLERS),
    "jupyter_server.services.shutdown",
    "jupyter_core.migrate",
    "jinja2.ext",
    "tornado.platform.asyncio",
    "campushub.server.lab_session",
    "campushub.server.job_port",
    # what a forked child imports itself: its process title, this module (the parent runs it as __main__), the
    # kernel provisioner and kernel specs of its first kernel
    "setproctitle",
    "campushub.server.forkserver",
    "campushub.server.kernels",
    "ipykernel.kernelspec",
    *KERNEL_STARTS,
]
#: where a forked server finds its kernel parent (a file descriptor)
KERNEL_PARENT = "CAMPUSHUB_KERNEL_PARENT"
#: the folder of a server's forked kernels' sockets (campushub.server.kernels): made, readable and writable by the
#: user alone, with the kernel parent, which removes it as it ends (with the server)
KERNEL_SOCKETS = "CAMPUSHUB_KERNEL_SOCKETS"
#: the longest folder a kernel's socket may be in: the socket's path, ``FOLDER/NAME-PORT`` (a name of 16 hex digits,
#: campushub.server.kernels), has at most 107 bytes
LONGEST_SOCKETS_FOLDER = 107 - len("/0123456789abcdef-5")
#: set ("1") for a server that was not forked here (a container, a Slurm job) of a ``fast_start`` profile: it forks a
#: kernel parent of its own as it starts (:func:`campushub.server.singleuser.warm_kernels`)
WARM_KERNELS = "CAMPUSHUB_WARM_KERNELS"
#: what a kernel parent imports when the server it serves was not forked from a pre-imported parent
KERNEL_PRELOAD = [
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.debugger",
    "campushub.server.debugger",
    "IPython",
    *KERNEL_STARTS,
]
#: the kernel class of every kernel of this Python, forked or not: its debugger answers only the kernel itself
KERNEL_CLASS = "campushub.server.debugger.Kernel"
KERNEL_CLASS_OPTION = f"--IPKernelApp.kernel_class={KERNEL_CLASS}"
#: the only variables the parent starts with (it must hold no secret; see above)
PARENT_ENV = ["PATH", "LANG", "LC_ALL", "LD_LIBRARY_PATH", "PYTHONPATH", "VIRTUAL_ENV"]
#: how long after a change to ``site-packages`` :func:`fingerprint` reads it again at every call
SETTLED_NS = 2 * 10**9


def fingerprint(python: str) -> str:
    """What is installed in ``python``'s environment: a new parent is needed when it changes.

    Asked at every start: the names of its ``*.dist-info`` folders are read again only when a ``site-packages``
    folder has changed (an install, upgrade or removal adds or removes one there), and always in the seconds after
    a change (a folder's time can stay the same over two changes in quick succession).
    """
    lib = Path(python).parent.parent / "lib"
    folders = tuple((str(f), f.stat().st_mtime_ns) for f in sorted(lib.glob("python3*/site-packages")))
    if any(time.time_ns() - changed < SETTLED_NS for _, changed in folders):
        return _installed.__wrapped__(folders)
    return _installed(folders)


@functools.lru_cache(maxsize=16)
def _installed(folders: tuple[tuple[str, int], ...]) -> str:
    entries = sorted(str(p.relative_to(Path(f).parent.parent)) for f, _ in folders for p in Path(f).glob("*.dist-info"))
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- the parent


def serve(path: str):
    """Listen on the Unix socket ``path`` (0600, in a 0700 folder) and fork a child per connection."""
    _preload()
    hello = {"fingerprint": fingerprint(sys.executable), "pid": os.getpid()}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    old = os.umask(0o177)
    listener.bind(path)
    os.umask(old)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the hub's Ctrl-C is for the hub
    while True:
        try:
            readable, _, _ = select.select([listener, sys.stdin], [], [])
        except InterruptedError:
            continue
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1):
            # the hub has gone: its children stay, and the next hub finds them; the socket and the folder the hub
            # made for it (empty then) go
            with contextlib.suppress(OSError):
                os.unlink(path)
                os.rmdir(os.path.dirname(path))
            return
        if listener in readable:
            connection, _ = listener.accept()
            _, uid, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            if uid not in (os.getuid(), 0):
                connection.close()
                continue
            try:
                op = _receive(connection).get("op")
            except (OSError, ValueError):
                op = None
            if op == "hello":
                _send(connection, hello)
            elif op == "fork" and os.fork() == 0:
                listener.close()
                _child(connection)  # never returns
            connection.close()


def _preload(modules: list[str] = PRELOAD):
    """Import what every server (or kernel) imports, once, here: forked children share it."""
    if modules is PRELOAD:
        from . import singleuser

        singleuser.diet()
        _look_up_provisioners()
    # debugpy warns, as it is imported, that the debugger may miss breakpoints in frozen standard modules: in
    # every job's and container's log, for every user, about something no user can change
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    for name in modules:
        try:
            __import__(name)
        except ImportError as e:
            print(f"forkserver: cannot preload {name}: {e}", file=sys.stderr)
    if modules is PRELOAD:
        _pack_module_names()
    with contextlib.suppress(ImportError):  # without ipykernel no kernel is forked from here
        from .debugger import list_parents_modules

        list_parents_modules()  # once here, for every kernel forked from here or from a child
    # the garbage collector would touch every object of the preloaded modules in each child, and
    # copy the pages they are on: move them out of its sight, so that children share them
    gc.collect()
    heap.fill_gaps()  # and the gaps the imports and the collection left would be filled in every child
    gc.freeze()


def _pack_module_names():
    """Give every module's name (its key in ``sys.modules``) and its ``__file__`` an equal, new copy, side by side.

    Every kernel reads both for each module as it starts (ipykernel's list of files its debugger skips), and each
    read writes the string's reference count. The imports left those strings scattered over this parent's heap, one
    or two to a page, so each kernel copied a page per string; new copies made in one go sit together.
    """
    for name in list(sys.modules):
        module = sys.modules.pop(name)
        try:
            namespace = object.__getattribute__(module, "__dict__")  # not getattr: that loads a lazy module
        except AttributeError:
            namespace = None
        if isinstance(namespace, dict) and isinstance(namespace.get("__file__"), str):
            namespace["__file__"] = _copy(namespace["__file__"])
        sys.modules[_copy(name)] = module


def _copy(text: str) -> str:
    """An equal string that is a new object (a dictionary keeps its old key when given an equal one)."""
    return (text + " ")[:-1]


def _look_up_provisioners():
    """Look up the installed kernel provisioners once, for every child: jupyter_client reads every package's entry
    points for them (3-4 ms) as each server starts its first kernel. They cannot change under this parent (the hub
    starts a new one when ``site-packages`` changes), and a provisioner that only a user's own site-packages has is
    still found: jupyter_client looks up by name one it does not know."""
    from jupyter_client.provisioning.factory import KernelProvisionerFactory

    installed = KernelProvisionerFactory._get_all_provisioners()
    KernelProvisionerFactory._get_all_provisioners = staticmethod(lambda: installed)


def _reap(_signum, _frame):
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _child(connection: socket.socket):
    """In the forked child: get the spec from the hub, become the user, run the server."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.setsid()
        _send(connection, {"pid": os.getpid()})
        spec = _receive(connection)
        user = spec["env"].get("JUPYTERHUB_USER", "")
        title(os.path.basename(spec["argv"][0]), user)
        _become(spec)
        if spec.get("log"):  # before the kernel parent forks: it and the kernels inherit the server's output
            output_to(spec["log"], stdin=True)
        temporary.make_own()  # before the kernel parent forks: it and the kernels inherit the server's TMPDIR
        kernels = start_kernel_parent(leave=(connection,))  # the hub's connection: the server's alone
        if spec.get("share_pages") is True:
            _share_identical_pages()
        _send(connection, {"ok": True})
        _gate(connection)
        os.environ[KERNEL_PARENT] = str(kernels)
        sys.argv = spec["argv"]
        from . import singleuser

        code = singleuser.serve() or 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        if not isinstance(e.code, int | None):  # as Python prints it at the top: the server's last words, in its log
            print(e.code, file=sys.stderr)
    except BaseException as e:  # noqa: BLE001 (everything must end here: never return into the parent's loop)
        with contextlib.suppress(OSError):
            _send(connection, {"error": f"{type(e).__name__}: {e}"})
        print(f"forkserver: the server could not start: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _gate(connection: socket.socket):
    """End this process if the hub closes ``connection`` before its "go", which it sends once it has saved this
    process's pid: a hub killed before then must not leave a server that no hub knows of (the next one would
    neither route to it nor stop it). A thread waits for it while the server starts: the save costs no time."""

    def wait():
        try:
            go = _receive(connection).get("go") is True
        except (OSError, ValueError):
            go = False
        connection.close()
        if not go:
            print("forkserver: the hub stopped before it recorded this server's start; ending it", file=sys.stderr)
            sys.stderr.flush()
            os._exit(1)

    threading.Thread(target=wait, name="campushub-gate", daemon=True).start()


def title(*words: str):
    """What ``ps`` and ``/proc/PID/cmdline`` show for this process: a forked child would otherwise show the fork
    server's command line, and ``campushub up`` would blame campushub for a port a user's process holds."""
    try:
        from setproctitle import setproctitle
    except ImportError:  # a lab image without it: the process shows its parent's command line
        return
    setproctitle(" ".join(w for w in words if w))


def _become(spec: dict):
    """Take the user's identity, folder, umask and environment, and fresh random state."""
    if spec.get("uid") == 0:
        raise PermissionError("a server never runs as root")
    if spec.get("uid") is not None:
        os.setgroups(spec["groups"])
        os.setgid(spec["gid"])
        os.setuid(spec["uid"])
        _dumpable()
    os.umask(spec["umask"])
    os.makedirs(spec["cwd"], 0o755, exist_ok=True)
    os.chdir(spec["cwd"])
    os.environ.clear()
    os.environ.update(spec["env"])
    random.seed()
    ssl.RAND_add(os.urandom(64), 64.0)
    _user_site()


def _dumpable():
    """After setuid a process is not dumpable (owned by root in /proc); a server started with exec
    would be: make it so, so that the user may inspect their own processes as usual."""
    _prctl(4, 1)  # PR_SET_DUMPABLE


def _share_identical_pages():
    """Let the host's kernel merge this server's pages with identical pages of other servers (KSM), for a profile
    with ``share_identical_pages``. Most of what a forked server writes is the same in every server: the reference
    counts of the parent's objects it uses. Only this process takes part: its kernel parent, forked before, and the
    kernels, which run the user's code on the user's data, do not."""
    error = _prctl(67, 1)  # PR_SET_MEMORY_MERGE (Linux 6.4)
    if error:
        print(f"forkserver: this kernel does not merge a process's pages ({os.strerror(error)})", file=sys.stderr)


def _prctl(option: int, value: int) -> int:
    """``prctl(option, value)``; the error number, or 0."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return 0 if libc.prctl(option, value, 0, 0, 0) == 0 else ctypes.get_errno()


def _user_site():
    """The user's own site-packages (~/.local/...), as a Python started as the user would have it."""
    parent_site = site.USER_SITE
    site.USER_BASE = site.USER_SITE = None
    if parent_site in sys.path:
        sys.path.remove(parent_site)
    user_site = site.getusersitepackages()
    if site.ENABLE_USER_SITE and os.path.isdir(user_site):
        site.addsitedir(user_site)


# ---------------------------------------------------------------- kernels, forked from the server's child


def sockets_folder() -> str:
    """A new folder for a server's kernels' sockets, that only its user can open (``mkdtemp``: 0700): in ``$TMPDIR``,
    or in ``/tmp`` where ``$TMPDIR`` is too long a path for a socket's name in it."""
    folder = tempfile.mkdtemp(prefix="campushub-kernels-")
    if len(folder) > LONGEST_SOCKETS_FOLDER:
        os.rmdir(folder)
        folder = tempfile.mkdtemp(prefix="campushub-kernels-", dir="/tmp")
    return folder


def start_kernel_parent(warm: bool = False, leave: tuple[socket.socket, ...] = ()) -> int:
    """Fork, from the child before its server starts, a parent for the user's Python kernels; with ``warm`` (a
    server not forked from a pre-imported parent), the kernel parent imports the kernel machinery itself, while the
    server imports JupyterLab. The kernel parent closes the sockets in ``leave``, so that no kernel holds them.

    Returns the file descriptor of the server's end of their socket pair; the kernel
    provisioner (campushub.server.kernels) asks for kernels over it. Sets :data:`KERNEL_SOCKETS` where a folder can
    be made.
    """
    try:
        os.environ[KERNEL_SOCKETS] = sockets = sockets_folder()
    except OSError as e:  # no writable TMPDIR or /tmp: the server still starts, its kernels the normal way
        sockets = ""
        print(f"campushub: kernels start the normal way: no folder for their sockets ({e})", file=sys.stderr)
    server_end, kernel_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    gc.freeze()
    if os.fork() == 0:
        code = 0
        try:
            title("campushub-kernels", os.environ.get("JUPYTERHUB_USER", ""))
            for held in (server_end, *leave):
                held.close()
            from .singleuser import aiohttp_as_installed, forget_deferred

            forget_deferred()
            aiohttp_as_installed()
            signal.signal(signal.SIGCHLD, _reap)
            if warm:
                _preload(KERNEL_PRELOAD)
            gc.enable()  # a cold server made it with the collector off (singleuser.main): its kernels collect
            while True:
                try:
                    request = _receive(kernel_end)
                except OSError:
                    break  # the server has ended
                pid = os.fork()
                if pid == 0:
                    kernel_end.close()
                    _kernel(request)
                _send(kernel_end, {"pid": pid})
        finally:
            if sockets:
                shutil.rmtree(sockets, ignore_errors=True)
            temporary.remove_own()
            os._exit(code)
    kernel_end.close()
    server_end.set_inheritable(False)
    return server_end.detach()


def _kernel(request: dict):
    """In a forked kernel: its own session, folder, environment and random state, then ipykernel."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        argv = request["argv"]
        title(argv[0], "-m", "ipykernel_launcher", *argv[1:])  # as a kernel started the normal way shows
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # from the kernel's TMPDIR: its kernel spec may name another
        random.seed()
        ssl.RAND_add(os.urandom(64), 64.0)
        # the kernel ends when its parent does (which ends with the server), as a kernel started
        # by the server ends with the server
        sys.argv = [*request["argv"], f"--IPKernelApp.parent_handle={os.getppid()}"]
        from ipykernel import kernelapp
        from traitlets.config import Config

        if argv[1:2] == ["-f"] and argv[3:] == [KERNEL_CLASS_OPTION]:
            # the default kernel's command line (campushub.server.kernels): given as config, not parsed
            config = {
                "IPKernelApp": {
                    "connection_file": argv[2],
                    "parent_handle": os.getppid(),
                    "kernel_class": KERNEL_CLASS,
                }
            }
            kernelapp.IPKernelApp.launch_instance([], config=Config(config))
        else:
            kernelapp.launch_new_instance()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # noqa: BLE001 (as in _child: the kernel's child never returns)
        print(f"forkserver: the kernel could not start: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# ---------------------------------------------------------------- the wire: one JSON object per line


def _send(connection: socket.socket, message: dict):
    connection.sendall(json.dumps(message).encode() + b"\n")


def _receive(connection: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the other end closed the connection")
        data += chunk
    return json.loads(data)


if __name__ == "__main__":
    serve(sys.argv[1])
