"""Where a setting came from (the site file, a seed variable, the compose deployment's ``.env``), for messages.

A message that says only ``profiles.0.image: ... is missing`` leaves the admin to guess which of
three files to change; these say which one, and under what name.
"""

from __future__ import annotations

#: compose.yaml sets this in the hub's environment: the host's path of the engine socket it mounts
COMPOSE_SOCKET = "CAMPUSHUB_COMPOSE_SOCKET"
#: the variables compose.yaml sets in the hub's environment, and the ``.env`` key each comes from
#: (None: compose.yaml fixes it); tests/fast/test_compose.py compares this with compose.yaml
COMPOSE_KEYS = {
    "DOCKER_JUPYTER_CONTAINER": "LAB_IMAGE",
    "DOCKER_NETWORK_NAME": None,
    COMPOSE_SOCKET: "CONTAINER_SOCKET",
}
#: where the engine's socket is in the hub's container (compose.yaml mounts CONTAINER_SOCKET there)
MOUNTED_SOCKET = "/var/run/docker.sock"


def in_compose(environ) -> bool:
    """Whether this environment is the compose deployment's hub (or ``check --compose``'s copy of it)."""
    return bool(environ.get(COMPOSE_SOCKET))


def variable(name: str, environ) -> str:
    """How the admin sets the variable ``name``: itself, or the ``.env`` key compose.yaml takes it from."""
    if in_compose(environ) and name in COMPOSE_KEYS:
        key = COMPOSE_KEYS[name]
        return f"{name}, which compose.yaml sets" + (f" from {key} in .env" if key else "")
    return f"${name}"


def setting(field: str, environ) -> str:
    """What set the site-file ``field`` (``container.image``): a seed variable overrides the file."""
    from .read import ENV_OVERRIDES

    for name, (section, key) in ENV_OVERRIDES.items():
        if f"{section}.{key}" == field and environ.get(name):
            return f"set by {variable(name, environ)}"
    return "from the site file"


def socket_origin(socket: str | None, environ) -> str:
    """Who chose the engine socket ``socket`` (``container.socket``, ``$DOCKER_HOST``, compose or the default)."""
    if socket:
        return "container.socket in the site file"
    if in_compose(environ) and not environ.get("DOCKER_HOST"):
        return f"the host's {environ[COMPOSE_SOCKET]}: CONTAINER_SOCKET in .env"
    if environ.get("DOCKER_HOST"):
        return "$DOCKER_HOST"
    return "the default; set container.socket or $DOCKER_HOST"
