"""The ``campushub`` command: check, init, frontdoor and up."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from . import __version__, engine
from .settings import SiteError, config_path, load_site, raise_problems, warnings_for


def check(path: Path, offline: bool = False) -> int:
    """Validate the site file (and, unless offline, ask the container engine): ``ok`` and 0, or problems and 2."""
    try:
        site = load_site(path)
        if not offline:
            raise_problems(engine.problems(site))
    except SiteError as e:
        return e.report()
    for note in warnings_for(site):
        print(f"warning: {note}", file=sys.stderr)
    print("ok")
    return 0


def init(path: Path) -> int:
    """Write the starter site file (the embedded default), never over an existing one."""
    if path.exists():
        print(f"campushub: {path} already exists; leaving it as it is", file=sys.stderr)
        return 0
    path.write_text(resources.files("campushub").joinpath("templates/starter.yaml").read_text())
    print(f"campushub: wrote {path}")
    return 0


def frontdoor(path: Path, out: Path, root: str | None = None) -> int:
    """Write the Apache configuration of the front door (TLS, SSO) into ``out``."""
    from . import frontdoor as door

    try:
        site = load_site(path)
        if not site.front_door:
            raise SiteError(["front_door: not in the site file (see docs/front-door.md)"])
        conf = door.write(site, out, root)
    except SiteError as e:
        return e.report()
    print(f"campushub: wrote {conf} and {out / 'campushub-vhost.conf'}")
    print(f"campushub: run it with: apache2 -f {conf} -DFOREGROUND")
    if site.front_door.certificate.source == "local_ca":
        print(f"campushub: browsers must trust {out / 'ca' / 'ca.pem'}")
    return 0


def up(path: Path, as_user: str | None = None) -> int:
    from .runner import run_hub

    return run_hub(path, as_user)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="campushub", description=__doc__)
    parser.add_argument("--version", action="version", version=f"campushub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    helps = {
        "check": "validate the site file",
        "init": "write a starter site file (the embedded default) if there is none",
        "up": "run the hub in the foreground until Ctrl-C",
        "frontdoor": "write the Apache configuration of the HTTPS and SSO front door",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--config", metavar="PATH",
                       help="site file (default: $CAMPUSHUB_CONFIG, else ./campushub.yaml)")
        if name == "check":
            p.add_argument("--offline", action="store_true",
                           help="only read the file: do not ask the container engine about sockets and images")
        if name == "frontdoor":
            p.add_argument("--out", metavar="DIR", type=Path, default=Path("frontdoor"),
                           help="folder for httpd.conf, campushub-vhost.conf and tls/ (default ./frontdoor)")
            p.add_argument("--root", metavar="PATH",
                           help="where Apache sees that folder, if elsewhere (in a container: its mount point)")
        if name == "up":
            p.add_argument("--as-user", metavar="ACCOUNT",
                           help="when started as root, run the hub as this unprivileged account")
    args = parser.parse_args(argv)
    path = config_path(args.config)
    if args.command == "up":
        return up(path, args.as_user)
    if args.command == "check":
        return check(path, args.offline)
    if args.command == "frontdoor":
        return frontdoor(path, args.out, args.root)
    return init(path)


if __name__ == "__main__":
    sys.exit(main())
