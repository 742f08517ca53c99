# JupyterHub's config file. Everything comes from the site file ($CAMPUSHUB_CONFIG or
# ./campushub.yaml); campushub.hub.configurer is the only place that turns it into config.
from campushub.hub.configurer import configure_from_env

configure_from_env(get_config())  # noqa: F821 (provided by JupyterHub)
