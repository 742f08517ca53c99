"""Stand-ins for what a test cannot have without a running hub; each says why, and where the real one is tested."""

from __future__ import annotations

from types import SimpleNamespace


class StubUser:
    """JupyterHub's User, as far as the profiles spawner reads it before a start: a name and groups.

    A stand-in (not a real hub) so that each rule of the options boundary is one fast case; the spawner with a
    real hub and real users is tested in tests/services/test_profiles.py.
    """

    def __init__(self, name: str = "ada", groups: tuple[str, ...] = ()):
        self.name = self.escaped_name = name
        self.groups = [SimpleNamespace(name=g) for g in groups]
        self.url = f"/user/{name}/"
        self.server = None
        self.id = 1
