"""The ``campushub`` command: check, init, frontdoor, up, status, backup, restore, upgrade and doctor."""

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
    for note in notes:  # first: which engine answered explains a missing image below
        print(f"warning: {note}", file=sys.stderr)
    raise_problems(problems)
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


def backup(path: Path, dest: Path) -> int:
    """Copy the database and the state's secrets into ``dest`` while the hub runs."""
    from time import monotonic

    from .backup import backup as copy
    from .settings import load_site

    started = monotonic()
    manifest = copy(load_site(path), dest)
    print(
        f"campushub: backed up the {manifest['database']} database and {len(manifest['files']) - 1} state files"
        f" to {dest} in {monotonic() - started:.1f} s"
    )
    return 0


def restore(path: Path, source: Path, force: bool) -> int:
    """Put a backup into the site's (stopped) state directory and database."""
    from time import monotonic

    from .backup import restore as put_back
    from .settings import load_site

    started = monotonic()
    manifest, saved = put_back(load_site(path), source, force)
    if saved:
        print(f"campushub: the state it replaced is backed up in {saved}")
    print(
        f"campushub: restored the backup of {manifest['created']} (JupyterHub {manifest['jupyterhub']},"
        f" {manifest['database']}) in {monotonic() - started:.1f} s; start the hub with `campushub up`"
    )
    return 0


def upgrade(path: Path, saved: Path | None, as_user: str | None) -> int:
    """Back up, then migrate the database to this JupyterHub's schema."""
    from .settings import load_site
    from .upgrade import upgrade as migrate

    for line in migrate(load_site(path), path, saved, as_user):
        print(f"campushub: {line}" if not line.startswith(" ") else line)
    return 0


def doctor(path: Path, frontdoor_dir: Path | None) -> int:
    """One line per problem of the running deployment, with what to do: 0 when there is none, else 1."""
    from .doctor import examine
    from .settings import load_site

    findings = examine(load_site(path), frontdoor_dir)
    for finding in findings:
        print(finding)
    if not findings:
        print("ok: nothing to fix")
    return 1 if findings else 0


def up(path: Path, as_user: str | None = None) -> int:
    from .runner import run_hub

    return run_hub(path, as_user)


HELP = {
    "check": "validate the site file",
    "backup": "copy the database and the state's secrets into a folder, while the hub runs",
    "restore": "put a backup into the state directory and database (the hub stopped)",
    "upgrade": "back up, then migrate the database to this JupyterHub's schema",
    "doctor": "find what is wrong with the running deployment, and say what to do",
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
        if name in ("backup", "restore"):
            p.add_argument("dir", metavar="DIR", type=Path, help="the backup's folder")
        if name == "restore":
            p.add_argument("--force", action="store_true", help="replace existing state (which is backed up first)")
        if name == "upgrade":
            p.add_argument(
                "--backup",
                metavar="DIR",
                type=Path,
                help="where to back up first (default state_dir/backups/before-upgrade-TIME)",
            )
        if name == "doctor":
            p.add_argument(
                "--frontdoor",
                metavar="DIR",
                type=Path,
                help="the folder `campushub frontdoor` wrote, for the certificate's expiry (default ./frontdoor)",
            )
        if name in ("up", "upgrade"):
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
        if args.command in ("backup", "restore"):
            return backup(path, args.dir) if args.command == "backup" else restore(path, args.dir, args.force)
        if args.command == "upgrade":
            return upgrade(path, args.backup, args.as_user)
        if args.command == "doctor":
            default = Path("frontdoor")
            return doctor(path, args.frontdoor or (default if default.is_dir() else None))
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
