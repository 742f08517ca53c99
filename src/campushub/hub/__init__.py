"""What runs in the hub's process: the config it reads, the profiles spawner and its form, campushub's API
handlers, pages and metrics, and the culler service it starts."""

from importlib import resources

#: JupyterHub's config file: it hands the site file to :func:`campushub.hub.configurer.configure_from_env`
CONFIG_FILE = resources.files(__name__).joinpath("jupyterhub_config.py")
