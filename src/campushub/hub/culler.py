"""The idle culler as the hub runs it: jupyterhub-idle-culler, ending at once when the hub stops it.

JupyterHub stops its services with SIGINT, then waits up to 30 s before SIGTERM; a culler caught in a
round of culling took that long (Ctrl-C on ``campushub up`` took 30 s, and ``up`` then killed the hub,
which left the culler and users' servers running). A culler holds nothing that needs a clean end.
"""

from __future__ import annotations

import os
import signal
import sys

from jupyterhub_idle_culler import main


def _end(_signum, _frame):
    os._exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _end)
    signal.signal(signal.SIGTERM, _end)
    sys.exit(main())
