"""Deprecated: campushub's authenticator is :class:`campushub.auth.remote_user.CampusRemoteUserAuthenticator`.

Its old name, ``RemoteUserAuthenticator``, collided with the seed's and a community
package's class, so ``c.RemoteUserAuthenticator`` settings applied to any of them.
"""

import warnings


def __getattr__(name):
    if name == "RemoteUserAuthenticator":
        warnings.warn(
            "campushub.remote_user.RemoteUserAuthenticator is now"
            " campushub.auth.remote_user.CampusRemoteUserAuthenticator (config section"
            " c.CampusRemoteUserAuthenticator)",
            DeprecationWarning,
            stacklevel=2,
        )
        from .auth.remote_user import CampusRemoteUserAuthenticator

        return CampusRemoteUserAuthenticator
    raise AttributeError(name)
