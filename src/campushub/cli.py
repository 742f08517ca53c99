"""The ``campushub`` command: check, init, frontdoor, up and status."""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources
from pathlib import Path

from . import __version__
from .errors import Problems, SiteError, raise_problems


def check(path: Path, offline: bool = False) -> int:
    """Validate the site file (and, unless offline, ask the container engine): ``ok`` and 0, or problems."""
    from .configurer import class_problems
    from .settings import load_site, preflight, warnings_for
    from .startup import check_problems

    site = load_site(path)
    raise_problems(class_problems(site) + ([] if offline else preflight(site) + check_problems(site)))
    for note in warnings_for(site):
        print(f"warning: {note}", file=sys.stderr)
    print("ok")
    return 0


def check_compose(files: list[Path], env_file: Path | None, engine: str | None) -> int:
    """Check the compose deployment as its hub will see it (``.env``, the site file, the engine), before ``up``."""
    from .compose import Deployment
    from .compose_check import check as check_deployment

    problems, notes = check_deployment(Deployment.read(files, env_file), engine)
    raise_problems(problems)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    print("ok")
    return 0


def status(path: Path, compose: list[Path] | None, env_file: Path | None, wait: float) -> int:
    """Whether the hub answers ``/hub/health`` (through the port compose publishes, with ``--compose``)."""
    from .runner import health_url, wait_healthy

    if compose is not None:
        from .compose import Deployment

        deployment = Deployment.read(compose, env_file)
        url, log = deployment.health_url(), "scripts/compose logs hub"
    else:
        from .settings import load_site

        url, log = health_url(load_site(path).hub.bind_url), "the output of `campushub up`"
    answer = wait_healthy(url, wait)
    if answer is None:
        print(f"campushub: the hub does not answer at {url}; see {log}", file=sys.stderr)
        return 1
    print(f"ok: the hub answers at {url} ({answer})")
    return 0


def init(path: Path) -> int:
    """Write the starter site file (the embedded default), never over an existing one."""
    if path.exists():
        print(
            f"campushub: {path} already exists; leaving it as it is (delete it first for a new starter file)",
            file=sys.stderr,
        )
        return 0
    path.write_text(resources.files("campushub").joinpath("templates/starter.yaml").read_text())
    print(f"campushub: wrote {path}")
    return 0


def frontdoor(path: Path, out: Path, root: str | None = None) -> int:
    """Write the Apache configuration of the front door (TLS, SSO) into ``out``."""
    from . import frontdoor as door
    from .settings import load_site

    site = load_site(path)
    if not site.front_door:
        raise SiteError(["front_door: not in the site file (see docs/front-door.md)"])
    conf = door.write(site, out, root)
    print(f"campushub: wrote {conf} and {out / 'campushub-vhost.conf'}")
    if root:
        print(
            f"campushub: the front door's container reads it at {root}; start it with"
            " scripts/compose -f compose.yaml -f compose.frontdoor.yaml up -d hub frontdoor"
        )
    else:
        print(f"campushub: run it with: apache2 -f {conf.absolute()} -DFOREGROUND")
    if site.front_door.certificate.source == "local_ca":
        print(f"campushub: browsers must trust {out / 'ca' / 'ca.pem'}")
    return 0


def up(path: Path, as_user: str | None = None) -> int:
    from .runner import run_hub

    return run_hub(path, as_user)


HELP = {
    "check": "validate the site file",
    "init": "write a starter site file (the embedded default) if there is none",
    "up": "run the hub in the foreground until Ctrl-C",
    "frontdoor": "write the Apache configuration of the HTTPS and SSO front door",
    "status": "say whether the hub answers /hub/health",
}


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="campushub", description=__doc__)
    main.add_argument("--version", action="version", version=f"campushub {__version__}")
    sub = main.add_subparsers(dest="command", required=True)
    for name, text in HELP.items():
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--config", metavar="PATH", help="site file (default: $CAMPUSHUB_CONFIG, else ./campushub.yaml)")
        if name == "check":
            p.add_argument(
                "--offline",
                action="store_true",
                help="only read the file: do not ask the container engine about sockets and images",
            )
        if name in ("check", "status"):
            p.add_argument(
                "--compose",
                metavar="FILE",
                nargs="*",
                type=Path,
                help="the compose deployment, as the hub's container will see it: the compose files (default"
                " ./compose.yaml) and .env beside the first; the site file is CAMPUSHUB_SITE_FILE",
            )
            p.add_argument("--env-file", metavar="PATH", type=Path, help="with --compose: .env elsewhere")
        if name == "check":
            p.add_argument(
                "--engine",
                choices=("podman", "docker"),
                help="with --compose: the engine compose runs the hub on (podman-compose: podman), which"
                " CONTAINER_SOCKET must be too",
            )
        if name == "status":
            p.add_argument(
                "--wait", metavar="SECONDS", type=float, default=0, help="wait this long for the hub to answer"
            )
        if name == "frontdoor":
            p.add_argument(
                "--out",
                metavar="DIR",
                type=Path,
                default=Path("frontdoor"),
                help="folder for httpd.conf, campushub-vhost.conf and tls/ (default ./frontdoor)",
            )
            p.add_argument(
                "--root",
                metavar="PATH",
                help="where Apache sees that folder, if elsewhere (in a container: its mount point)",
            )
        if name == "up":
            p.add_argument(
                "--as-user", metavar="ACCOUNT", help="when started as root, run the hub as this unprivileged account"
            )
        if name == "up":
            p.add_argument(
                "--retry-delay",
                metavar="SECONDS",
                type=float,
                default=0,
                help="on a problem, wait this long before exiting, so that a container's restarts stay slow",
            )
    return main


def main(argv=None) -> int:
    from .settings import config_path

    args = parser().parse_args(argv)
    path = config_path(args.config)
    try:
        if getattr(args, "compose", None) is not None and args.config:
            raise SiteError(["--config: with --compose the site file is the one compose mounts (CAMPUSHUB_SITE_FILE)"])
        if args.command == "up":
            return up(path, args.as_user)
        if args.command == "check":
            if args.compose is not None:
                return check_compose(args.compose, args.env_file, args.engine)
            return check(path, args.offline)
        if args.command == "status":
            return status(path, args.compose, args.env_file, args.wait)
        if args.command == "frontdoor":
            return frontdoor(path, args.out, args.root)
        return init(path)
    except Problems as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        if args.command == "up" and args.retry_delay:
            print(
                f"campushub: waiting {args.retry_delay:g} s before exiting, so that restarts stay slow",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(args.retry_delay)
        return 2


if __name__ == "__main__":
    sys.exit(main())
