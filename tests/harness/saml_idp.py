"""The tests' SAML identity provider: Debian's SimpleSAMLphp in an Apache of its own, with users the tests define."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from pathlib import Path

import jinja2
import requests

from .env import REPO

TEMPLATES = REPO / "tests" / "idp" / "saml"
PASSWORD = "pass"


def php(value: str) -> str:
    """``value`` as a PHP string literal."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class SamlIdp:
    """SimpleSAMLphp at ``http://HOST:PORT``; ``users`` maps a login to its attributes by friendly name (``uid``,
    ``eduPersonPrincipalName``, ``isMemberOf``: lists of values), every password is :data:`PASSWORD`.

    The service providers it serves are read from ``sp_metadata`` at every request (the front door writes it
    after the IdP has started). A new signing key is made at each start.
    """

    def __init__(self, folder: Path, port: int, users: dict, host: str = "localhost", address: str = "127.0.0.1"):
        self.folder, self.port, self.users, self.host, self.address = folder, port, users, host, address
        self.base = f"http://{host}:{port}"
        self.entity_id = f"{self.base}/simplesaml/saml2/idp/metadata.php"
        self.sp_metadata = folder / "sp-metadata.xml"
        self.certificate = folder / "cert" / "idp.crt"

    def start(self) -> SamlIdp:
        folder = self.folder
        for name in ("config", "metadata", "cert", "log", "run", "tmp", "data", "sessions", "htdocs"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        for name in ("log", "tmp", "data", "sessions"):
            shutil.chown(folder / name, "www-data", "www-data")
        key = folder / "cert" / "idp.key"
        new_key = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test IdP"]
        subprocess.run([*new_key, "-keyout", str(key), "-out", str(self.certificate)], check=True, capture_output=True)
        shutil.chown(key, group="www-data")
        key.chmod(0o640)
        values = {
            "dir": str(folder),
            "host": self.host,
            "address": self.address,
            "port": self.port,
            "base": self.base,
            "entity_id": self.entity_id,
            "sp_metadata": str(self.sp_metadata),
            "salt": secrets.token_hex(16),
            "users": self.users,
            "password": PASSWORD,
            "php": php,
        }
        render = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
        places = {
            "httpd.conf": folder / "httpd.conf",
            "config.php": folder / "config" / "config.php",
            "authsources.php": folder / "config" / "authsources.php",
            "saml20-idp-hosted.php": folder / "metadata" / "saml20-idp-hosted.php",
            "saml20-sp-remote.php": folder / "metadata" / "saml20-sp-remote.php",
        }
        for name, path in places.items():
            path.write_text(render.from_string((TEMPLATES / name).read_text()).render(**values))
            if path.suffix == ".php":
                shutil.chown(path, group="www-data")
                path.chmod(0o640)
        subprocess.run(["apache2", "-f", str(folder / "httpd.conf"), "-k", "start"], check=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.get(f"{self.entity_id}", timeout=5)
                if r.status_code == 200:
                    self.metadata = r.text
                    return self
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (folder / "log" / "error.log").read_text()[-2000:]
            time.sleep(0.2)

    def stop(self):
        subprocess.run(["apache2", "-f", str(self.folder / "httpd.conf"), "-k", "stop"], capture_output=True)
