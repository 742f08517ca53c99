"""The hub's process (``python -m campushub.hub -f jupyterhub_config.py``, as ``campushub up`` runs it):
JupyterHub on uvloop's event loop.

JupyterHub makes its event loop before it reads any config, so the loop is chosen here, before JupyterHub starts.
uvloop's loop does the hub's sockets, its aiohttp client's connections (to the proxy, to servers) and its callbacks
in C: a class of 100 sign-ins cost the hub about 7% less CPU, and the API's p99 under a burst fell by about a tenth
(docs/benchmarks.md, "The hub on uvloop"). Everything else is JupyterHub's own ``jupyterhub`` command.
"""

import asyncio
import sys

import uvloop
from jupyterhub.app import main

asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
sys.exit(main())
