"""``campushub-singleuser``: JupyterHub's single-user server, started without what it does not need.

A JupyterLab server spends most of its start importing. Two imports do nothing for a user:

- ``rfc3987-syntax``, which jsonschema's format checks import when it is installed (through
  jupyter_events), builds dozens of parsers at import: about 1 s of CPU. Without it jsonschema
  skips the IRI formats, which no event schema of jupyter_server uses;
- JupyterLab's ``get_app_version()`` runs ``node yarn.js config`` at import when ``node`` is on
  PATH, to read a registry only the extension manager needs: about 0.35 s.

This module also points ``JUPYTER_CONFIG_PATH`` at campushub's server config (read-only extension
manager, no news, no update check, the resource meter without host figures or a Prometheus
collector every second) and ``JUPYTER_PATH`` at its JupyterLab extension (a Slurm session's time
left, :mod:`campushub.server.lab_session`); a user's own config still wins. It imports only
the standard library and Jupyter, so the lab images can carry it without the rest of campushub.
Measured figures: docs/benchmarks.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG = str(Path(__file__).parent / "jupyter")


def diet():
    """Leave out the imports above, and use campushub's server config (before anything Jupyter is imported)."""
    sys.modules.setdefault("rfc3987_syntax", None)  # an import of it now fails, as if it were not installed
    import jupyterlab.commands

    jupyterlab.commands._yarn_config = _no_yarn_config
    for variable in ("JUPYTER_CONFIG_PATH", "JUPYTER_PATH"):  # config; data (the labextension campushub-session)
        paths = os.environ.get(variable, "")
        if CONFIG not in paths.split(os.pathsep):
            os.environ[variable] = os.pathsep.join(p for p in (paths, CONFIG) if p)


def _no_yarn_config(logger):
    return {"yarn config": {}, "npm config": {}}


def warm_kernels():
    """A server started without a kernel parent (in a container, a Slurm job) forks one now, if its profile is
    ``fast_start``: it imports ipykernel while this process imports JupyterLab, so that the first Python kernel is a
    fork too."""
    from .forkserver import KERNEL_PARENT, WARM_KERNELS, start_kernel_parent

    if os.environ.pop(WARM_KERNELS, "") == "1" and KERNEL_PARENT not in os.environ:
        os.environ[KERNEL_PARENT] = str(start_kernel_parent(warm=True))


def main():
    diet()
    warm_kernels()
    from jupyterhub.singleuser import main as singleuser

    return singleuser()


if __name__ == "__main__":
    sys.exit(main())
