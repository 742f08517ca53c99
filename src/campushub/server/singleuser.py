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


def main():
    diet()
    from jupyterhub.singleuser import main as singleuser

    return singleuser()


if __name__ == "__main__":
    sys.exit(main())
