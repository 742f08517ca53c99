"""campushub: a JupyterHub distribution for university research computing centers."""

__version__ = "0.2.0"
