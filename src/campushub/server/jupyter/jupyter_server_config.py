"""campushub's server config that depends on the user and the server, read in each server beside the JSON one.

JupyterLab computes where it keeps a user's settings and workspaces from HOME when it is imported; in a
server forked from campushub's pre-imported parent (campushub.server.forkserver) that was the parent's HOME, not
the user's, and saving either failed. jupyter-resource-usage compares the CPU limit (CPU_LIMIT, in CPUs)
with the use it measures in percent of one CPU, so its meter warned (red) at any use: it gets the limit in
its own unit. Kernels started the normal way listen on the host's loopback, where every user's code can connect:
their channels are encrypted (CurveZMQ), with keys only their connection file holds, wherever this server's ZeroMQ
can (an ipykernel that declares it, 7.4 or later; docs/authentication.md). Forked kernels talk over Unix sockets in a
folder only their user can open instead (campushub.server.kernels). A user's own config (~/.jupyter) still wins over
all of this.
"""

import os

import zmq
from jupyterlab.commands import get_user_settings_dir, get_workspaces_dir

c = get_config()  # noqa: F821 (given to every Jupyter config file)
c.LabApp.user_settings_dir = get_user_settings_dir()
c.LabApp.workspaces_dir = get_workspaces_dir()
if float(os.environ.get("CPU_LIMIT") or 0):
    c.ResourceUseDisplay.cpu_limit = float(os.environ["CPU_LIMIT"]) * 100
if zmq.has("curve"):
    c.KernelManager.transport_encryption = "auto"
