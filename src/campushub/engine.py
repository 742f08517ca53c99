"""Ask the container engine whether the site's container profiles can run."""

from __future__ import annotations

from .settings import ContainerProfile, Site


def problems(site: Site) -> list[str]:
    """Unreachable engine, missing images or networks, as ``field.path: reason`` lines."""
    profiles = [(i, p) for i, p in enumerate(site.profiles) if isinstance(p, ContainerProfile)]
    if not profiles:
        return []
    try:
        import docker
        from docker.utils import kwargs_from_env
    except ImportError:
        return ["profiles: container profiles need DockerSpawner: pip install 'campushub[container]'"]
    kwargs = {**kwargs_from_env(), "version": "auto", "timeout": 10}
    if site.container.socket:
        kwargs["base_url"] = site.container.socket
    where = kwargs.get("base_url", "unix:///var/run/docker.sock")
    try:
        client = docker.APIClient(**kwargs)
        client.ping()
    except Exception as e:  # the SDK raises several kinds for a missing socket or a dead engine
        return [f"container.socket: no container engine answers at {where} ({type(e).__name__});"
                " start one (scripts/engine start podman) or set container.socket / DOCKER_HOST"]
    found = []
    for i, profile in profiles:
        image = profile.image or site.container.image
        try:
            client.inspect_image(image)
        except docker.errors.ImageNotFound:
            found.append(f"profiles.{i}.image: {image} is not in the engine at {where};"
                         " build it (scripts/images) or load it: campushub never pulls images")
        network = profile.network or site.container.network
        if network and network != "bridge":
            try:
                client.inspect_network(network)
            except docker.errors.NotFound:
                found.append(f"profiles.{i}.network: there is no network {network!r} in the engine at {where}")
    return found
