"""The compose deployment seen from the host, before ``up``: what the hub's container will see.

Reads the compose files and ``.env`` as compose does (the shell's variables win over ``.env``,
then compose.yaml's defaults), works out the hub's environment, site file, engine socket and
addresses, and checks them, naming the ``.env`` key behind each problem.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..sitefile.errors import SiteError

SITE_TARGET = "/etc/campushub/campushub.yaml"
#: ${NAME}, ${NAME:-default}, ${NAME-default}, $NAME and $$, as compose interpolates them
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}|\$(\w+)")


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as compose reads ``.env`` (comments, ``export``, quotes)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip().removeprefix("export ").strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if value[:1] in ("'", '"') and value.endswith(value[0]) and len(value) > 1:
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        values[key] = value
    return values


def _merge(base, more):
    """Compose's merge of several files: mappings key by key, lists joined, other values replaced."""
    if isinstance(base, dict) and isinstance(more, dict):
        return {**base, **{key: _merge(base.get(key), value) for key, value in more.items()}}
    if isinstance(base, list) and isinstance(more, list):
        return base + [item for item in more if item not in base]
    return more


@dataclass
class Deployment:
    """compose files and ``.env``; ``variables`` are what compose interpolates with."""

    files: list[Path]
    env_file: Path
    variables: dict[str, str] = field(default_factory=dict)
    from_env_file: set[str] = field(default_factory=set)
    config: dict = field(default_factory=dict)

    @classmethod
    def read(cls, files: list[Path], env_file: Path | None = None, environ=os.environ) -> Deployment:
        files = [Path(f) for f in files] or [Path("compose.yaml")]
        env_file = env_file or files[0].absolute().parent / ".env"
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise SiteError([f"{', '.join(missing)}: no such compose file (give the files as compose gets them)"])
        from_file = read_env_file(env_file) if env_file.is_file() else {}
        config: dict = {}
        for f in files:
            config = _merge(config, yaml.safe_load(f.read_text()) or {})
        return cls(files, env_file, {**from_file, **environ}, set(from_file) - set(environ), config)

    @property
    def folder(self) -> Path:
        return self.files[0].absolute().parent

    def where(self, key: str) -> str:
        """``KEY`` and where its value comes from, for messages."""
        if key in self.from_env_file:
            return f"{key} in {self.env_file}"
        if key in self.variables:
            return f"{key} in the environment, which wins over {self.env_file}"
        return f"{key}, not in {self.env_file}: compose.yaml's default"

    def interpolate(self, value):
        if isinstance(value, dict):
            return {k: self.interpolate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.interpolate(v) for v in value]
        if not isinstance(value, str):
            return value

        def one(match):
            if match.group(0) == "$$":
                return "$"
            name = match.group(1) or match.group(4)
            found = self.variables.get(name)
            if (match.group(2) == ":-" and not found) or (match.group(2) == "-" and found is None):
                return match.group(3)
            return found or ""

        return VARIABLE.sub(one, value)

    def service(self, name: str = "hub") -> dict:
        return self.interpolate(self.config.get("services", {}).get(name) or {})

    def keys_in(self, text: str) -> list[str]:
        """The variables a raw (not interpolated) compose value uses: the ``.env`` keys behind it."""
        return [m.group(1) or m.group(4) for m in VARIABLE.finditer(text) if m.group(0) != "$$"]

    def hub_environment(self) -> dict[str, str]:
        environment = self.service().get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        return {key: str(value) for key, value in environment.items() if value is not None}

    def mount(self, target: str) -> tuple[Path, str] | None:
        """(host path, the source as the compose file writes it) of the hub's volume mounted at ``target``."""
        for spec in self.config["services"]["hub"].get("volumes") or []:
            source, _, rest = self.interpolate(spec).partition(":")
            if rest.split(":")[0] == target:
                path = Path(source) if source.startswith("/") else self.folder / source
                return path, spec[: spec.rindex(f":{target}")]
        return None

    def networks(self) -> dict[str, dict]:
        """Each network compose makes, by its name in the engine."""
        networks = self.interpolate(self.config.get("networks") or {})
        return {(net or {}).get("name", key): net or {} for key, net in networks.items()}

    def hub_addresses(self) -> dict[str, tuple[str, str]]:
        """{network name: (the hub's fixed address on it, that value as the compose file writes it)}."""
        networks = self.config.get("networks") or {}
        found = {}
        for key, spec in (self.config["services"]["hub"].get("networks") or {}).items():
            if spec and spec.get("ipv4_address"):
                name = self.interpolate((networks.get(key) or {}).get("name", key))
                found[name] = (self.interpolate(spec["ipv4_address"]), str(spec["ipv4_address"]))
        return found

    @property
    def project(self) -> str:
        """The project name, which prefixes the names of compose's containers."""
        return self.variables.get("COMPOSE_PROJECT_NAME") or re.sub(r"[^a-z0-9_-]", "", self.folder.name.lower())

    def health_url(self) -> str:
        """``/hub/health`` through the port compose publishes on the host."""
        for port in self.service().get("ports") or []:
            parts = str(port).split(":")
            if parts[-1] == "8000":
                host = parts[0] if len(parts) == 3 else "127.0.0.1"
                return f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{parts[-2]}/hub/health"
        raise SiteError(["services.hub.ports: the hub's port 8000 is not published, so nothing on the host reaches it"])
