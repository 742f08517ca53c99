"""The ``campushub`` command: check, init, frontdoor, up, status, backup, restore, upgrade, doctor and report."""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from . import __version__
from .sitefile.errors import Problems, SiteError, raise_problems


def check(path: Path, args) -> int:
    """Validate the site file (and, unless offline, ask the container engine): ``ok`` and 0, or problems; with
    ``--compose``, the compose deployment."""
    if args.compose is not None:
        return check_compose(args.compose, args.env_file, args.engine)
    from .hub.configurer import class_problems
    from .ops.startup import check_problems
    from .sitefile.read import load_site, preflight, warnings_for

    site = load_site(path)
    raise_problems(class_problems(site) + ([] if args.offline else preflight(site) + check_problems(site)))
    for note in warnings_for(site):
        print(f"warning: {note}", file=sys.stderr)
    print("ok")
    return 0


def check_compose(files: list[Path], env_file: Path | None, engine: str | None) -> int:
    """Check the compose deployment as its hub will see it (``.env``, the site file, the engine), before ``up``."""
    from .ops.compose import Deployment
    from .ops.compose_check import check as check_deployment

    problems, notes = check_deployment(Deployment.read(files, env_file), engine)
    for note in notes:  # first: which engine answered explains a missing image below
        print(f"warning: {note}", file=sys.stderr)
    raise_problems(problems)
    print("ok")
    return 0


def status(path: Path, args) -> int:
    """Whether the hub answers ``/hub/health`` (through the port compose publishes, with ``--compose``)."""
    from .ops.health import health_url, wait_healthy

    if args.compose is not None:
        from .ops.compose import Deployment

        deployment = Deployment.read(args.compose, args.env_file)
        url, log = deployment.health_url(), "scripts/compose logs hub"
    else:
        from .sitefile.read import load_site

        url, log = health_url(load_site(path).hub.bind_url), "the output of `campushub up`"
    answer = wait_healthy(url, args.wait)
    if answer is None:
        print(f"campushub: the hub does not answer at {url}; see {log}", file=sys.stderr)
        return 1
    print(f"ok: the hub answers at {url} ({answer})")
    return 0


def init(path: Path, args) -> int:
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


def frontdoor(path: Path, args) -> int:
    """Write the Apache configuration of the front door (TLS, SSO) into ``--out``."""
    from .ops import frontdoor as door
    from .sitefile.read import load_site

    out, root = args.out, args.root
    site = load_site(path)
    front = door.door_of(site)
    if args.saml_metadata:
        if not front.saml:
            raise SiteError(["front_door.saml: not in the site file; --saml-metadata is the SAML front door's"])
        print(door.saml.metadata(front, front.saml, out, door.TEMPLATES), end="")
        return 0
    certificate = front.certificate
    conf = door.write(site, out, root)
    print(f"campushub: wrote {conf} and {out / 'campushub-vhost.conf'}")
    if root:
        print(
            f"campushub: the front door's container reads it at {root}; start it with"
            " scripts/compose -f compose.yaml -f compose.frontdoor.yaml up -d hub frontdoor"
        )
    else:
        print(f"campushub: run it with: {(out / 'run').absolute()} (as root; Apache stays in the foreground)")
    if certificate.source == "local_ca":
        print(f"campushub: browsers must trust {out / 'ca' / 'ca.pem'}")
    return 0


def backup(path: Path, args) -> int:
    """Copy the database and the state's secrets into a new folder while the hub runs."""
    from time import monotonic

    from .ops.backup import backup as copy
    from .sitefile.read import load_site

    started = monotonic()
    dest = args.dir
    manifest = copy(load_site(path), dest)
    print(
        f"campushub: backed up the {manifest['database']} database and {len(manifest['files']) - 1} state files"
        f" to {dest} in {monotonic() - started:.1f} s"
    )
    return 0


def restore(path: Path, args) -> int:
    """Put a backup into the site's (stopped) state directory and database."""
    from time import monotonic

    from .ops.backup import restore as put_back
    from .sitefile.read import load_site

    started = monotonic()
    manifest, saved = put_back(load_site(path), args.dir, args.force)
    if saved:
        print(f"campushub: the state it replaced is backed up in {saved}")
    print(
        f"campushub: restored the backup of {manifest['created']} (JupyterHub {manifest['jupyterhub']},"
        f" {manifest['database']}) in {monotonic() - started:.1f} s; start the hub with `campushub up`"
    )
    return 0


def upgrade(path: Path, args) -> int:
    """Back up, then migrate the database to this JupyterHub's schema."""
    from .ops.upgrade import upgrade as migrate
    from .sitefile.read import load_site

    for line in migrate(load_site(path), path, args.backup, args.as_user):
        print(f"campushub: {line}" if not line.startswith(" ") else line)
    return 0


def doctor(path: Path, args) -> int:
    """One line per problem of the running deployment, with what to do: 0 when there is none, else 1."""
    from .ops.doctor import examine
    from .sitefile.read import load_site

    default = Path("frontdoor")
    findings = examine(load_site(path), args.frontdoor or (default if default.is_dir() else None))
    for finding in findings:
        print(finding)
    if not findings:
        print("ok: nothing to fix")
    return 1 if findings else 0


def report(path: Path, args) -> int:
    """Usage from the sessions ledger between two dates, grouped, as a table, CSV or JSON."""
    from .ledger import store
    from .ledger.report import ReportError
    from .ledger.report import report as make_report
    from .sitefile.errors import StartError
    from .sitefile.read import load_site

    site = load_site(path)
    try:
        with store.connected(site) as connection:
            if store.revision(connection) is None:
                raise StartError(
                    [f"ledger: {store.database.shown(site)} has no sessions ledger yet (the hub makes it)"]
                )
            found = make_report(connection, args.since, args.until, args.by, args.group)
    except ReportError as e:
        raise StartError([str(e)]) from None
    if found.note and args.format != "table":
        print(found.note, file=sys.stderr)
    sys.stdout.write(found.text(args.format))
    return 0


def up(path: Path, args) -> int:
    """Run the hub in the foreground."""
    from .ops.up import run_hub

    return run_hub(path, args.as_user)


COMMANDS = {
    # name: (what it does, the function that does it, its options beyond --config)
    "check": ("validate the site file", check, ("offline", "compose", "env_file", "engine")),
    "backup": ("copy the database and the state's secrets into a folder, while the hub runs", backup, ("dir",)),
    "restore": ("put a backup into the state directory and database (the hub stopped)", restore, ("dir", "force")),
    "upgrade": ("back up, then migrate the database to this JupyterHub's schema", upgrade, ("backup", "as_user")),
    "doctor": ("find what is wrong with the running deployment, and say what to do", doctor, ("frontdoor",)),
    "init": ("write a starter site file (the embedded default) if there is none", init, ()),
    "up": ("run the hub in the foreground until Ctrl-C", up, ("as_user", "retry_delay")),
    "frontdoor": (
        "write the Apache configuration of the HTTPS and SSO front door",
        frontdoor,
        ("out", "root", "saml_metadata"),
    ),
    "status": ("say whether the hub answers /hub/health", status, ("compose", "env_file", "wait")),
    "report": (
        "usage from the sessions ledger between two dates, grouped",
        report,
        ("since", "until", "by", "group", "format"),
    ),
}

#: option -> (its flags, argparse's settings)
OPTIONS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "config": (
        ["--config"],
        {"metavar": "PATH", "help": "site file (default: $CAMPUSHUB_CONFIG, else ./campushub.yaml)"},
    ),
    "offline": (
        ["--offline"],
        {
            "action": "store_true",
            "help": "only read the file: do not ask the container engine about sockets and images",
        },
    ),
    "compose": (
        ["--compose"],
        {
            "metavar": "FILE",
            "nargs": "*",
            "type": Path,
            "help": "the compose deployment, as the hub's container will see it: the compose files (default"
            " ./compose.yaml) and .env beside the first; the site file is CAMPUSHUB_SITE_FILE",
        },
    ),
    "env_file": (["--env-file"], {"metavar": "PATH", "type": Path, "help": "with --compose: .env elsewhere"}),
    "engine": (
        ["--engine"],
        {
            "choices": ("podman", "docker"),
            "help": "with --compose: the engine compose runs the hub on (podman-compose: podman), which"
            " CONTAINER_SOCKET must be too",
        },
    ),
    "wait": (
        ["--wait"],
        {"metavar": "SECONDS", "type": float, "default": 0, "help": "wait this long for the hub to answer"},
    ),
    "out": (
        ["--out"],
        {
            "metavar": "DIR",
            "type": Path,
            "default": Path("frontdoor"),
            "help": "folder for httpd.conf, campushub-vhost.conf and tls/ (default ./frontdoor)",
        },
    ),
    "root": (
        ["--root"],
        {"metavar": "PATH", "help": "where Apache sees that folder, if elsewhere (in a container: its mount point)"},
    ),
    "saml_metadata": (
        ["--saml-metadata"],
        {
            "action": "store_true",
            "help": "print the SAML front door's metadata (for its registration at the campus identity provider)"
            " instead; its key pair is made in --out once and kept",
        },
    ),
    "dir": (["dir"], {"metavar": "DIR", "type": Path, "help": "the backup's folder"}),
    "force": (["--force"], {"action": "store_true", "help": "replace existing state (which is backed up first)"}),
    "backup": (
        ["--backup"],
        {
            "metavar": "DIR",
            "type": Path,
            "help": "where to back up first (default state_dir/backups/before-upgrade-TIME)",
        },
    ),
    "frontdoor": (
        ["--frontdoor"],
        {
            "metavar": "DIR",
            "type": Path,
            "help": "the folder `campushub frontdoor` wrote, for the certificate's expiry (default ./frontdoor)",
        },
    ),
    "as_user": (
        ["--as-user"],
        {"metavar": "ACCOUNT", "help": "when started as root, run the hub as this unprivileged account"},
    ),
    "since": (["--since"], {"metavar": "YYYY-MM-DD", "help": "the first day (UTC; default 30 days before --until)"}),
    "until": (["--until"], {"metavar": "YYYY-MM-DD", "help": "the last day, included (UTC; default today)"}),
    "by": (
        ["--by"],
        {"default": "group", "help": "group by user, group, profile, backend, account, month or day (default group)"},
    ),
    "group": (["--group"], {"metavar": "NAME", "help": "only the sessions of users in this group"}),
    "format": (
        ["--format"],
        {
            "choices": ("table", "csv", "json"),
            "default": "table",
            "help": "table for people, csv or json (default table)",
        },
    ),
    "retry_delay": (
        ["--retry-delay"],
        {
            "metavar": "SECONDS",
            "type": float,
            "default": 0,
            "help": "on a problem, wait this long before exiting, so that a container's restarts stay slow",
        },
    ),
}


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="campushub", description=__doc__)
    main.add_argument("--version", action="version", version=f"campushub {__version__}")
    sub = main.add_subparsers(dest="command", required=True)
    for name, (text, _run, options) in COMMANDS.items():
        command = sub.add_parser(name, help=text, description=text)
        for option in ("config", *options):
            flags, settings = OPTIONS[option]
            command.add_argument(*flags, **settings)
    return main


def main(argv=None) -> int:
    from .sitefile.read import config_path

    args = parser().parse_args(argv)
    path = config_path(args.config)
    try:
        if getattr(args, "compose", None) is not None and args.config:
            raise SiteError(["--config: with --compose the site file is the one compose mounts (CAMPUSHUB_SITE_FILE)"])
        return COMMANDS[args.command][1](path, args)
    except Problems as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        if getattr(args, "retry_delay", 0):
            print(
                f"campushub: waiting {args.retry_delay:g} s before exiting, so that restarts stay slow",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(args.retry_delay)
        return 2


if __name__ == "__main__":
    sys.exit(main())
