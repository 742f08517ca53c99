"""Value types the site file's sections share: URLs, sizes, header and host names, secrets."""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from jupyterhub.traitlets import ByteSpecification
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from traitlets import TraitError

from .errors import SiteError


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value


def _byte_size(value: str | int) -> str | int:
    try:
        ByteSpecification().validate(None, value)
    except TraitError:
        raise ValueError(
            f"{value!r} is not a size JupyterHub understands (use a number of bytes or K, M, G, T: '4G')"
        ) from None
    return value


def _header_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", value):
        raise ValueError(f"{value!r} is not a valid HTTP header name")
    return value


def _host_name(value: str) -> str:
    labels = value.split(".")
    if len(value) > 253 or not all(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", x) for x in labels):
        raise ValueError(f"{value!r} is not a host name (letters, digits and '-' in dot-separated labels)")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
ByteSize = Annotated[str | int, AfterValidator(_byte_size)]
HeaderName = Annotated[str, AfterValidator(_header_name)]
HostName = Annotated[str, AfterValidator(_host_name)]
Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(min_length=1)]


def is_loopback(url_or_host: str) -> bool:
    """Whether a URL's host, or a host, is this machine's loopback (only local programs reach it)."""
    host = (urlsplit(url_or_host).hostname or "") if "://" in url_or_host else url_or_host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)
def is_local(address) -> bool:
    """Whether ``address`` belongs to this host (or container): only local addresses can be bound."""
    if address.is_loopback:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((str(address), 0))
        return True
    except OSError:
        return False


def byte_count(size: str | int) -> int:
    """A validated :data:`ByteSize` in bytes."""
    return ByteSpecification().validate(None, size)


class Model(BaseModel):
    """A site-file section: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def default_of(cls, field: str):
        """A field's default, for the traitlet that takes the field: each default is said once, here."""
        return cls.model_fields[field].get_default(call_default_factory=True)


class SecretSource(Model):
    """A secret read from an environment variable or a file, never written in the site file."""

    env: Name | None = Field(None, description="name of the environment variable that holds the secret")
    file: Path | None = Field(None, description="path of a file that holds the secret")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' (a variable name) or 'file' (a path)")
        return self


def read_secret(source: SecretSource, path: str, min_length: int = 1, private: bool = False) -> str:
    """The secret's value; ``path`` (its place in the site file) names it in errors.

    ``private``: refuse a file that other accounts on this host can read.
    """
    where = f"{path}.env" if source.env else f"{path}.file"
    try:
        value = (os.environ[source.env] if source.env else Path(str(source.file)).read_text()).strip()
        mode = source.file.stat().st_mode & 0o777 if source.file else 0
    except KeyError:
        raise SiteError([f"{where}: environment variable {source.env} is not set"]) from None
    except OSError as e:
        raise SiteError([f"{where}: cannot read {source.file}: {e.strerror}"]) from None
    if private and mode & 0o077:
        raise SiteError(
            [
                f"{where}: {source.file} is readable by other accounts (mode {mode:o}) and users' code"
                f" runs on this host; make it private: chmod 600 {source.file}"
            ]
        )
    if len(value) < min_length:
        raise SiteError([f"{where}: the secret is shorter than {min_length} characters"])
    return value
