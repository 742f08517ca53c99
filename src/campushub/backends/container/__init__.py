"""``backend: container``: a JupyterLab container per user (DockerSpawner on Docker or Podman)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ...sitefile.choices import Choices, ListChoice, NumberChoice, SizeChoice
from ...sitefile.fields import HttpUrl, Model, Name
from ..base import Backend, ProfileBase, limits, limits_words
from . import engine


class ContainerDefaults(Model):
    """Defaults for every ``container`` profile; the seed's DOCKER_* variables set these."""

    socket: Annotated[str, Field(pattern=r"^(unix|tcp|ssh)://.+")] | None = Field(
        None,
        description="the engine's Docker API socket (Docker or Podman); default `$DOCKER_HOST`, else"
        " `unix:///var/run/docker.sock`",
    )
    hub_connect_url: HttpUrl | None = Field(
        None,
        description="the hub's API as containers reach it, when that differs from the hub's own view (a hub"
        " on the host: `http://host.containers.internal:8081` with Podman, with `hub.hub_ip: 0.0.0.0`)",
    )
    image: Name | None = Field(None, description="the JupyterLab image (never pulled: build or load it)")
    network: Name | None = Field(None, description="the network users' containers join")
    notebook_dir: Name = Field("/home/jovyan/work", description="where the user's volume is mounted")
    volume: Annotated[str, Field(pattern=r"^[A-Za-z0-9{][A-Za-z0-9_.{}-]*$")] = Field(
        "jupyterhub-user-{username}", description="name of the per-user volume"
    )
    uid_base: Annotated[int, Field(ge=65536, le=2**31 - 2**24)] | None = Field(
        2_000_000,
        description="each user's container runs as uid `uid_base` + the user's number in the hub's database (group"
        " 100, `users`, which Jupyter's images give their home folders): a uid no host account and no other"
        " user's container has. `null`: as the image's own user, a uid every user's container shares (1000 in"
        " Jupyter's images); rootless engines need `null`",
    )


class ContainerChoices(Choices):
    """What users of a ``container`` profile may choose; the engine enforces CPUs and memory."""

    image: ListChoice | None = Field(None, description="the image, from a list")
    cpu: NumberChoice | None = Field(None, description="CPUs")
    memory: SizeChoice | None = Field(None, description="memory")


class ContainerProfile(ProfileBase):
    """A JupyterLab container per user."""

    backend: Literal["container"]
    choices: ContainerChoices | None = Field(None, description="what users choose when they start it, within bounds")
    image: Name | None = Field(None, description="the image; default `container.image`")
    network: Name | None = Field(
        None, description="the network the container joins; default `container.network`, else `bridge`"
    )
    notebook_dir: Name | None = Field(
        None, description="where the per-user volume is mounted; default `container.notebook_dir`"
    )
    volumes: dict[Name, Name] = Field({}, description="more named volumes: name (may use `{username}`) to mount point")
    gpus: Annotated[int, Field(ge=0)] = Field(0, description="GPUs to ask the engine for")


class Container(Backend):
    name = "container"
    profile = ContainerProfile
    defaults = ContainerDefaults
    choices = ContainerChoices
    persistent = True
    takes_turns = True

    def problems(self, site, index, profile):
        found = super().problems(site, index, profile)
        if not (profile.image or site.container.image or (profile.choices and profile.choices.image)):
            found.append(
                f"profiles.{index}.image: no image: set it here, in container.image, or with DOCKER_JUPYTER_CONTAINER"
            )
        return found

    def warnings(self, site, index, profile):
        if site.container.uid_base is not None or index != next(
            i for i, p in enumerate(site.profiles) if p.backend == self.name
        ):
            return []
        return [
            "container.uid_base: null: every user's container runs as the image's own uid (1000 in Jupyter's"
            " images): a host account with that uid can read their processes (and the servers' tokens); on a"
            " rootful engine, give each user a uid of their own (the default)"
        ]

    def card(self, site, profile):
        folder = profile.notebook_dir or site.container.notebook_dir
        image = None if profile.choices and profile.choices.image else profile.image or site.container.image
        extra = [f"{profile.gpus} GPU" + ("" if profile.gpus == 1 else "s")] if profile.gpus else []
        if profile.choices and profile.choices.image:
            extra.append("the image as you choose below")
        return {
            "gets": limits_words(profile, extra),
            "runs": "in a container of its own" + (f" ({image})" if image else ""),
            "keeps": f"{folder}, your own volume, kept when the server stops; the rest of the container starts"
            " afresh each time",
        }

    def choice_settings(self, settings, chosen):
        found = limits(chosen)
        if "image" in chosen:
            found["image"] = chosen["image"]
        return found

    def doctor(self, site, known):
        return engine.doctor(site, known)

    def preflight(self, site, profiles):
        """Unreachable engine, missing images or networks, addresses users' containers could take: see engine.py."""
        return engine.preflight(site, profiles)

    def spawner_class(self, profile):
        return "campushub.backends.container.spawner.CampusDockerSpawner"

    def spawner(self, site, index, profile, config):
        """DockerSpawner on ``container.socket`` (default: $DOCKER_HOST, else /var/run/docker.sock)."""
        defaults = site.container
        notebook_dir = profile.notebook_dir or defaults.notebook_dir
        if defaults.socket:
            config["client_kwargs"] = {"base_url": defaults.socket}
        if defaults.hub_connect_url:
            config["hub_connect_url"] = defaults.hub_connect_url
        config.update(
            image=profile.image or defaults.image or profile.choices.image.first(),
            pull_policy="never",  # images come from scripts/images or the site's registry, never implicitly
            remove=True,  # a stopped server's container goes (and the next start uses the current image)
            # {username} is escaped by DockerSpawner (a-z0-9, '-' escapes): names cannot collide
            volumes={defaults.volume: notebook_dir, **profile.volumes},
            notebook_dir=notebook_dir,
            network_name=profile.network or defaults.network or "bridge",
            # wrapspawner would otherwise hand the container the hub host's process settings
            ip="0.0.0.0",
            port=8888,
            cmd=None,  # the image's own command
            uid_base=defaults.uid_base,
        )
        # the hub removes a container when it stops it, after reading how it ended: the engine's own
        # auto-remove (DockerSpawner's default with remove) would take that with it the moment it exits
        config["extra_host_config"] = {"auto_remove": False}
        if profile.gpus:
            config["extra_host_config"]["device_requests"] = [
                {"Driver": "", "Count": profile.gpus, "Capabilities": [["gpu"]]}
            ]
        return self.spawner_class(profile), config


BACKEND = Container()
