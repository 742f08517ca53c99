"""campushub: a JupyterHub distribution for university research computing centers."""

from importlib.metadata import version

__version__ = version("campushub")
