"""campushub's server config that depends on the user, read in the user's own server beside the JSON one.

JupyterLab computes where it keeps a user's settings and workspaces from HOME when it is imported; in a
server forked from campushub's pre-imported parent (campushub.forkserver) that was the parent's HOME, not
the user's, and saving either failed. A user's own config (~/.jupyter) still wins over this.
"""

from jupyterlab.commands import get_user_settings_dir, get_workspaces_dir

c = get_config()  # noqa: F821 (given to every Jupyter config file)
c.LabApp.user_settings_dir = get_user_settings_dir()
c.LabApp.workspaces_dir = get_workspaces_dir()
