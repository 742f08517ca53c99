"""The hub's garbage collector: fewer and shorter pauses, so that a burst of sign-ins does not stall the API.

A full collection walks every object the collector tracks, and the hub answers nothing meanwhile. In a hub of
1,000 users that was about 450,000 objects, 150-340 ms a time, seven times in three bursts of 100 sign-ins: the
slowest API calls of ``benchmarks/hub_api.py`` were the ones that waited for it. Two changes (docs/benchmarks.md):

- most of those objects are the modules, config, users and spawners loaded at start, which live as long as the
  hub: once it has started they are moved to the permanent generation (``gc.freeze()``), and full collections walk
  only what came after. What was frozen is still freed when nothing refers to it (only a cycle among frozen objects
  would stay, as it does for any object alive at start);
- a request's objects mostly die young: the youngest generation is collected every :data:`YOUNG` allocations
  instead of 700, so fewer of them live long enough to be promoted, and full collections come less often.
"""

from __future__ import annotations

import gc
import logging

LOG = logging.getLogger("JupyterHub")
#: allocations (less deallocations) between collections of the youngest generation (Python's default: 700)
YOUNG = 10_000


def tune():
    """In the hub's process: collect the youngest generation less often, and freeze what the hub holds as soon as
    ``JupyterHub.start()`` has finished."""
    from jupyterhub.app import JupyterHub

    if not JupyterHub.initialized():
        return  # not the hub's own process
    gc.set_threshold(YOUNG, *gc.get_threshold()[1:])
    started = getattr(JupyterHub.instance(), "_start_future", None)  # set by JupyterHub at the end of start()
    if started is None:
        LOG.warning("campushub: the hub's start cannot be followed; its objects stay in full collections")
        return
    started.add_done_callback(_freeze)


def _freeze(_started):
    gc.collect()
    gc.freeze()
    LOG.info("Kept %s objects the hub holds since its start out of full garbage collections", gc.get_freeze_count())
