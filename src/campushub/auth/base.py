"""What a login slice provides."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sitefile.fields import Model

if TYPE_CHECKING:
    from ..sitefile.model import Site


class Login:
    """A login slice: subclass it in ``auth/NAME.py`` and list the instance in ``auth/__init__.py``.

    ``settings`` is the model of the ``auth:`` section (with ``type: Literal[NAME]``).
    """

    name: str
    settings: type[Model]
    #: JupyterHub's authenticator_class: an entry point name (jupyterhub.authenticators) or a dotted name
    authenticator_class: str

    def problems(self, site: Site) -> list[str]:
        """``field.path: reason`` lines: combinations this login must refuse."""
        return []

    def warnings(self, site: Site, environ) -> list[str]:
        """What will work, but not as an admin might assume."""
        return []

    def prepare(self, site: Site):
        """In the hub's own process, before its config is read: the secrets this login keeps in the state
        directory. :meth:`configure` only reads them (:func:`campushub.ops.state.stored`)."""

    def configure(self, c, site: Site):
        """JupyterHub config for this login."""
        raise NotImplementedError
