"""Login to first kernel result, for N users at once, on a real hub (not a test).

For each profile in --profiles and each N in --users, N clients at once: log in through the
SSO header path, start a server on that profile, wait until it is ready, start a kernel and get
the result of ``1+1``. Prints the p50 and p95 of each step and writes everything to JSON.

    .venv/bin/python benchmarks/spawn.py --users 1,10,30
    .venv/bin/python benchmarks/spawn.py --profiles local,container --users 1,10

``local`` runs servers as processes on this host; ``container`` runs the slim lab image
(scripts/images) on the engine at $DOCKER_HOST (default: Podman's socket, scripts/engine);
``slurm`` submits jobs to the cluster at $SLURM_CONF (scripts/slurm), as system accounts that
the benchmark creates and removes. --repeat R repeats every round R times (p50 of 5: --repeat 5).

    .venv/bin/python benchmarks/spawn.py --profiles local,slurm --users 1 --repeat 5

Absolute times on a shared 2-core machine are noisy: compare figures from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from harness import GROUP, SECRET_ENV, Hub, ensure_account, free_port  # noqa: E402 (the tests' harness)

STEPS = ("login", "spawn", "kernel", "total")


PROFILES = {
    "local": {"backend": "local", "system_users": True},
    "container": {"backend": "container", "image": "localhost/campushub-lab-slim:latest"},
    "slurm": {"backend": "slurm", "cpu": 1, "memory": "1G"},
}
#: servers run as users' own accounts (or the engine's socket is root's): every hub runs as root
NEEDS_ACCOUNTS = {"local", "slurm"}


def default_site(profile: str) -> dict:
    site = {
        "auth": {"type": "remote_user", "required_groups": [GROUP], "proxy_secret": {"env": SECRET_ENV}},
        # 30 JupyterLab servers starting together need ~90 s of CPU on 2 cores
        "spawner": {"start_timeout": 600, "http_timeout": 600},
        "profiles": [{"slug": profile, "name": profile, "default": True, **PROFILES[profile]}],
        "culler": {"enabled": False},
    }
    if profile == "container":
        # the hub runs on this host; containers on the engine's default network call it back there
        port = free_port()
        site["hub"] = {"hub_ip": "0.0.0.0", "hub_port": port}
        site["container"] = {
            "socket": os.environ.get("DOCKER_HOST", "unix:///run/podman/podman.sock"),
            "hub_connect_url": f"http://host.containers.internal:{port}",
        }
    if profile == "slurm":
        site["slurm"] = {"conf": os.environ.get("SLURM_CONF", "/var/lib/campushub-slurm/slurm.conf")}
    return site


def accounts(names: list[str], make: bool):
    """Create (or remove) the system accounts servers and Slurm jobs run as."""
    for name in names:
        command = ["useradd", "--create-home", name] if make else ["userdel", "--remove", name]
        subprocess.run(command, capture_output=True, check=make)


def one_user(hub: Hub, name: str, profile: str) -> dict:
    t0 = time.perf_counter()
    session = hub.login(name, GROUP)
    t1 = time.perf_counter()
    hub.start_server(session, name, timeout=900, profile=profile)
    t2 = time.perf_counter()
    result = hub.run_code(name, hub.token(session, name), "1+1", timeout=300)
    t3 = time.perf_counter()
    assert result == "2", result
    return {"login": t1 - t0, "spawn": t2 - t1, "kernel": t3 - t2, "total": t3 - t0, "session": session}


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run_round(hub: Hub, n: int, profile: str, round_no: int, repeat: int) -> dict:
    results = []
    for r in range(repeat):
        names = [f"bench{round_no}-{r}-{i}" for i in range(n)]
        if profile in NEEDS_ACCOUNTS:
            accounts(names, make=True)
        try:
            with ThreadPoolExecutor(max_workers=n) as pool:
                batch = list(pool.map(lambda name: one_user(hub, name, profile), names))
            with ThreadPoolExecutor(max_workers=n) as pool:
                list(
                    pool.map(lambda pair: hub.stop_server(pair[0]["session"], pair[1]), zip(batch, names, strict=True))
                )
        finally:
            if profile in NEEDS_ACCOUNTS:
                accounts(names, make=False)
        results += batch
    summary = {"users": n, "profile": profile, "repeat": repeat}
    for step in STEPS:
        values = sorted(r[step] for r in results)
        summary[step] = {"p50": percentile(values, 50), "p95": percentile(values, 95), "all": values}
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="1,10,30", help="comma-separated user counts (default 1,10,30)")
    parser.add_argument("--profiles", default="local", help="comma-separated: local, container, slurm (default local)")
    parser.add_argument("--repeat", type=int, default=1, help="run every round this many times (default 1)")
    parser.add_argument("--site", type=Path, help="a site file to use (its profiles named in --profiles)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/spawn.json"))
    args = parser.parse_args(argv)

    import yaml

    ensure_account()
    folder = Path(tempfile.mkdtemp(prefix="campushub-bench-"))
    folder.chmod(0o755)
    rounds = []
    for profile in args.profiles.split(","):
        site = yaml.safe_load(args.site.read_text()) if args.site else default_site(profile)
        hub = Hub(folder / profile, site).start()
        try:
            for n in (int(x) for x in args.users.split(",")):
                print(f"spawn: {n} user(s) on profile {profile!r} ...", file=sys.stderr, flush=True)
                summary = run_round(hub, n, profile, len(rounds), args.repeat)
                rounds.append(summary)
                print(
                    f"  {profile:<10} users={n:<3}"
                    + "".join(
                        f"  {step} p50={summary[step]['p50']:.2f}s p95={summary[step]['p95']:.2f}s" for step in STEPS
                    )
                )
        finally:
            hub.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "spawn", "rounds": rounds}, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
