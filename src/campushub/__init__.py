"""campushub: a JupyterHub distribution for university research computing centers."""


def __getattr__(name: str):
    # read from the installed metadata when asked (a scan of site-packages): not in every server's start
    if name == "__version__":
        from importlib.metadata import version

        return version("campushub")
    raise AttributeError(f"module 'campushub' has no attribute {name!r}")
