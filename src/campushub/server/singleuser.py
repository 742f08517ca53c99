"""``campushub-singleuser``: JupyterHub's single-user server, started without what it does not need.

A JupyterLab server spends most of its start importing. Three imports do nothing for a user:

- ``rfc3987-syntax``, which jsonschema's format checks import when it is installed (through
  jupyter_events), builds dozens of parsers at import: about 1 s of CPU. Without it jsonschema
  skips the IRI formats, which no event schema of jupyter_server uses;
- JupyterLab's ``get_app_version()`` runs ``node yarn.js config`` at import when ``node`` is on
  PATH, to read a registry only the extension manager needs: about 0.35 s;
- the hub itself: the single-user server's request log and its scope checks import the hub's
  page handlers, metrics and database layer (SQLAlchemy, alembic): about 0.4 s, over a third
  of a cold start (:func:`without_the_hub`).

``requests`` (JupyterLab's extension listings, which campushub's config leaves off) is imported only
when first used, if ever: about 20 ms. Five costs of the start itself are left out too: jupyter_server's
``git rev-parse`` in a repository the environment sits in (:func:`_installed_jupyter_server`), traitlets'
parser for an empty command line (5-9 ms each, three times in a server), the c-ares resolver
thread of the server's client of the hub (8 ms), that client's reading of the system's CA
certificates before it ever connects (about 40 ms), and, in a cold start, Python's garbage collections
during the imports and set-up (about 60 ms; :func:`main`).

This module also points ``JUPYTER_CONFIG_PATH`` at campushub's server config (read-only extension
manager, no news, no update check, the resource meter without host figures or a Prometheus
collector every second) and ``JUPYTER_PATH`` at its JupyterLab extension (a Slurm session's time
left, :mod:`campushub.server.lab_session`); a user's own config still wins. It imports only
the standard library and Jupyter, so the lab images can carry it without the rest of campushub.
Measured figures: docs/benchmarks.md.
"""

from __future__ import annotations

import atexit
import gc
import importlib.abc
import importlib.machinery
import importlib.util
import os
import ssl
import sys
import threading
import types
from pathlib import Path

from . import job_port, temporary

CONFIG = str(Path(__file__).parent / "jupyter")
#: set by the hub for a server it starts the normal way: wait on stdin for its "go" (the pid is saved)
GATE = "CAMPUSHUB_GATE"


def diet():
    """Leave out the imports above, and use campushub's server config (before anything Jupyter is imported)."""
    sys.modules.setdefault("rfc3987_syntax", None)  # an import of it now fails, as if it were not installed
    without_the_hub()
    import jupyterlab.commands

    jupyterlab.commands._yarn_config = _no_yarn_config
    _installed_jupyter_server()
    _quick_empty_command_lines()
    _hub_client_resolves_with_the_system()
    for variable in ("JUPYTER_CONFIG_PATH", "JUPYTER_PATH"):  # config; data (the labextension campushub-session)
        paths = os.environ.get(variable, "")
        if CONFIG not in paths.split(os.pathsep):
            os.environ[variable] = os.pathsep.join(p for p in (paths, CONFIG) if p)


def _no_yarn_config(logger):
    return {"yarn config": {}, "npm config": {}}


def _installed_jupyter_server():
    """Take jupyter_server as the installed package it is, not a checkout of its repository.

    As each server starts, jupyter_server looks for a ``.git`` folder in every folder above its own and, finding one,
    runs ``git rev-parse`` there; it finds the repository a site's environment happens to sit in (a clone of
    campushub with its ``.venv``), runs git as the user in it (1.2-1.4 ms of CPU, a process per server), and, when
    that works, serves JupyterLab's static files uncached, as for a developer of jupyter_server.
    """
    from jupyter_server import _sysinfo

    _sysinfo.pkg_commit_hash = _no_commit


def _no_commit(pkg_path):
    return "", ""


def _quick_empty_command_lines():
    """Parse an empty command line without building a parser for it.

    traitlets builds an argparse parser of every option of every configurable class to parse any command line, even
    none: 5-9 ms of CPU each time. A server's command line is empty (JupyterHub passes the rest in the environment),
    and it is parsed three times (the server, then JupyterLab's and JupyterHub's extensions); a forked kernel's is
    empty too (:func:`campushub.server.forkserver._kernel`). An empty one sets nothing, so it now ends as a parsed
    one would: no arguments, an empty command-line config applied, no extra arguments. Any other command line is
    parsed as always.
    """
    from traitlets.config import Application, Config

    parse = Application.parse_command_line
    if hasattr(parse, "parse"):
        return

    def parse_command_line(self, argv=None):
        if argv is None:
            argv = self._get_sys_argv(check_argcomplete=bool(self.subcommands))[1:]
        if argv:
            return parse(self, argv)
        self.argv = []
        self.cli_config = Config()
        self.update_config(self.cli_config)
        self.extra_args = []
        return None

    parse_command_line.parse = parse  # traitlets' own, for any other command line
    Application.parse_command_line = parse_command_line


#: what ``jupyterhub.scopes`` imports for functions only the hub calls (the database models, roles, SQLAlchemy), and
#: ``requests``: run when first used, if ever
DEFERRED = ("jupyterhub.orm", "jupyterhub.roles", "sqlalchemy", "requests")


class _Deferred(importlib.abc.MetaPathFinder):
    """Finds the modules of :data:`DEFERRED` as usual, to be run only when first used (Python's ``LazyLoader``)."""

    def find_spec(self, name, path, target=None):
        if name not in DEFERRED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def _stand_ins() -> dict[str, types.ModuleType]:
    """For the hub modules the server's imports name, and never call in a server."""
    pages, metrics, errors = (types.ModuleType(name) for name in STANDING_IN)

    class HealthCheckHandler:
        """No request a single-user server serves is the hub's health check."""

    class SQLAlchemyError(Exception):
        """The hub's database errors, which ``jupyterhub.utils.catch_db_error`` catches in the hub alone."""

    vars(pages).update(HealthCheckHandler=HealthCheckHandler)
    vars(metrics).update(prometheus_log_method=lambda handler: None)
    vars(errors).update(SQLAlchemyError=SQLAlchemyError)
    return dict(zip(STANDING_IN, (pages, metrics, errors), strict=True))


#: the modules :func:`_stand_ins` stands in for, while the server's parts of JupyterHub are imported
STANDING_IN = ("jupyterhub.handlers.pages", "jupyterhub.metrics", "sqlalchemy.exc")


def without_the_hub():
    """Import the parts of JupyterHub a server uses, without the hub's handlers and database layer.

    ``jupyterhub.log`` (the server's request log) imports the hub's ``HealthCheckHandler``, to log the hub's health
    checks at debug level (no request of a server is one), and ``prometheus_log_method``, the hub's request
    histogram (a server counts its requests in jupyter_server's own metrics, so its ``/metrics`` no longer shows an
    empty ``jupyterhub_*`` family); ``jupyterhub.utils`` imports SQLAlchemy's base error for a decorator of the
    hub's. Stand-ins serve for those imports and are taken out of ``sys.modules`` at once, so that anything
    importing those modules later gets the real ones. ``jupyterhub.scopes``, which the server's authentication
    uses, imports the hub's database models for functions only the hub calls: they are run when first used
    (:data:`DEFERRED`); so is ``requests``, as JupyterLab's modules are imported here.
    """
    if any(name in sys.modules for name in ("jupyterhub.log", "jupyterhub.utils", *STANDING_IN, *DEFERRED)):
        return
    stand_ins = _stand_ins()
    sys.modules.update(stand_ins)
    deferred = _Deferred()
    sys.meta_path.insert(0, deferred)
    ssl.SSLContext.set_default_verify_paths = _certificates_at_first_connection
    try:
        import jupyterhub.log
        import jupyterhub.scopes
        import jupyterhub.utils  # noqa: F401
        import jupyterlab.commands  # noqa: F401
    finally:
        del ssl.SSLContext.set_default_verify_paths
        sys.meta_path.remove(deferred)
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def _certificates_at_first_connection(context: ssl.SSLContext):
    """Read the system's CA certificates into ``context`` just before its first connection, not now.

    Stands in for ``SSLContext.set_default_verify_paths`` while :func:`without_the_hub` imports aiohttp, which makes
    its two default SSL contexts as it is imported; each read the whole CA bundle, about 20 ms of CPU, in every
    server, for a client that talks to the hub over plain HTTP unless the hub's URL is HTTPS. Such a context verifies
    as it would have: the same mode and host-name check, and the same certificates, read before its first handshake
    (``wrap_bio``, which asyncio uses, or ``wrap_socket``).
    """
    lock = threading.Lock()

    def reading_first(name: str):
        def method(*args, **kwargs):
            with lock:
                if name in vars(context):
                    for own in ("wrap_bio", "wrap_socket"):
                        del vars(context)[own]
                    super(ssl.SSLContext, context).set_default_verify_paths()
            return getattr(ssl.SSLContext, name)(context, *args, **kwargs)

        return method

    context.wrap_bio = reading_first("wrap_bio")  # type: ignore[method-assign]
    context.wrap_socket = reading_first("wrap_socket")  # type: ignore[method-assign]


def _hub_client_resolves_with_the_system():
    """The server's client of the hub (aiohttp) looks names up with the system's resolver, as Python does.

    aiohttp's default is c-ares (aiodns, which JupyterHub requires) when it is installed, and its resolver starts a
    thread as it is made: 8 ms of CPU and a thread in every server, for a client that asks one address, often an
    IP address, which needs no lookup at all. A kernel parent gives its kernels aiohttp's default back
    (:func:`aiohttp_as_installed`).
    """
    from aiohttp import connector, resolver

    connector.DefaultResolver = resolver.ThreadedResolver


def aiohttp_as_installed():
    """In a kernel parent: a user's aiohttp client resolves with aiohttp's own default."""
    from aiohttp import connector, resolver

    connector.DefaultResolver = resolver.DefaultResolver


def forget_deferred():
    """In a kernel parent: take the modules of :data:`DEFERRED` that are still unused out of ``sys.modules``.

    ipykernel reads the ``__file__`` of every module in ``sys.modules`` as each kernel starts, which would import
    them in every kernel; a kernel that uses them imports them anew.
    """
    for name in DEFERRED:
        if type(sys.modules.get(name)) not in (types.ModuleType, type(None)):  # a LazyLoader's module, not yet run
            del sys.modules[name]


def warm_kernels():
    """A server started without a kernel parent (in a container, a Slurm job) forks one now, if its profile is
    ``fast_start``: it imports ipykernel while this process imports JupyterLab, so that the first Python kernel is a
    fork too."""
    from .forkserver import KERNEL_PARENT, WARM_KERNELS, start_kernel_parent

    if os.environ.pop(WARM_KERNELS, "") == "1" and KERNEL_PARENT not in os.environ:
        os.environ[KERNEL_PARENT] = str(start_kernel_parent(warm=True))


def gate():
    """A server the hub started the normal way starts once the hub has saved its pid: the hub writes "go" on its
    stdin then. A hub killed before then closes the pipe, and the server ends here, before it does anything."""
    if os.environ.pop(GATE, "") != "1":
        return
    if sys.stdin.buffer.readline().strip() != b"go":
        sys.exit("campushub-singleuser: the hub stopped before it recorded this server's start; not starting")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


def collect_once_started():
    """Turn Python's garbage collector back on as the server starts, with every object made so far (the imports',
    the server's set-up) frozen out of its sight, as the fork server does for the children it forks: collections
    then walk only what the running server makes."""
    from jupyter_server.serverapp import ServerApp

    start = ServerApp.start

    def started(self):
        gc.freeze()
        gc.enable()
        return start(self)

    ServerApp.start = started


def main():
    """``campushub-singleuser``: a server started cold (in a container, a Slurm job, or with ``fast_start: false``).

    Its imports and set-up run without Python's garbage collector, which ran about 200 collections in them, a sixth
    of their CPU, to free a few thousand objects (docs/benchmarks.md); it is on again from the server's start."""
    gc.disable()
    return serve(cold=True)


def serve(cold: bool = False):
    """Start the server; a child of the fork server comes here directly (its parent did the imports, and froze
    them)."""
    gate()
    diet()
    job_port.choose()
    if cold:  # a forked server's child made its folder before its kernel parent
        temporary.make_own()
        atexit.register(temporary.remove_own)
    warm_kernels()
    if cold:
        collect_once_started()
    from jupyterhub.singleuser import main as singleuser

    return singleuser()


if __name__ == "__main__":
    sys.exit(main())
