"""Login to first kernel result, for N users at once, on a real hub (a benchmark, not a test).

For each profile in --profiles and each N in --users, N clients at once: sign in through the
SSO header path, start a server on that profile, and run ``1+1`` in a new kernel. Each step is
timed on its own:

- ``login``: the header sign-in (``/hub/home``);
- ``spawn``: from the start request until the hub's progress events say ready (the hub's own
  notification, no polling);
- ``kernel``: from the kernel request until the result of ``1+1`` arrives (the API token is
  taken before, the kernel's shutdown happens after);
- ``total``: the three together.

Memory, in the first repeat of a round on this host's processes (not ``container``): the PSS of one idle server
and of a kernel in it, and of that their private dirty pages (what each wrote since its fork: its own alone); and,
with a kernel open in every user's server, the PSS of all the users' processes and of the fork servers divided by
the users, beside how much MemAvailable fell per user since the round began, read ``--settle`` seconds after the
last kernel opened, and what the kernel's KSM thread (``ksmd``) spent meanwhile.

CPU, in every repeat: the CPU seconds the round cost per user, by who spent them (the hub, the proxy, the fork
servers, this benchmark's own clients, and "servers": the users' server processes, kernel parents and kernels, and
the rest of the host, such as the engine or Slurm), from ``/proc``, over all the repeats.

A user who fails is counted with the step and the reason; the others go on. Every round is
written to the JSON file as soon as it ends, and every user's server is stopped (and its
account removed, once its server or job is gone) whatever happened.

    .venv/bin/python benchmarks/spawn.py --users 1,10,30
    .venv/bin/python benchmarks/spawn.py --profiles local,local-cold --users 1,10,30,100
    .venv/bin/python benchmarks/spawn.py --profiles local,container --users 1,10
    .venv/bin/python benchmarks/spawn.py --profiles local,slurm --users 1 --repeat 5
    .venv/bin/python benchmarks/spawn.py --profiles container-cold,container,slurm-cold,slurm --users 1 --repeat 5
    .venv/bin/python benchmarks/spawn.py --profiles local,slurm-nodes --users 1,10   # scripts/slurm cluster start
    .venv/bin/python benchmarks/spawn.py --profiles local,local-noledger --users 1,10 --repeat 3
    .venv/bin/python benchmarks/spawn.py --profiles local,local-shared --users 100 --settle 120   # KSM started

``local`` runs servers as processes on this host, as each user's own account, forked from the
pre-imported parent (the default); ``local-cold`` is the same with ``fast_start: false``; ``local-noledger`` is
``local`` without the sessions ledger (``ledger: {enabled: false}``); ``local-shared`` is ``local`` with
``share_identical_pages: true`` (the host's KSM merges the servers' identical pages once an admin has started it:
``echo 1 > /sys/kernel/mm/ksm/run``); ``container``
runs the slim lab image (scripts/images) on the engine at $DOCKER_HOST (default: Podman's
socket, scripts/engine); ``slurm`` submits jobs to the cluster at $SLURM_CONF (scripts/slurm); ``container-cold`` and
``slurm-cold`` are those with ``fast_start: false`` (no kernel parent: each kernel started the normal way);
``slurm-nodes`` submits to the cluster of several hosts (scripts/slurm cluster start), whose nodes reach the hub on
their bridge.
Absolute times on a shared 2-core machine are noisy: compare figures from the same run. Before the rounds it prints
how fast the machine runs Python at the time (the CPU a cold ``campushub-singleuser`` spends importing,
``benchmarks/imports.py``), to read figures from different days beside.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from imports import machine_speed

from harness import GROUP, SECRET_ENV, Hub, Kernel, ensure_account, free_port

STEPS = ("login", "spawn", "kernel", "total")
ADMIN = "bench-admin"

PROFILES = {
    "local": {"backend": "local", "system_users": True},  # forked from the pre-imported parent (the default)
    "local-cold": {"backend": "local", "system_users": True, "fast_start": False},  # started the normal way
    "local-noledger": {"backend": "local", "system_users": True},  # `local` on a site without the sessions ledger
    # `local` with the servers' identical pages merged by the host's kernel (KSM, when an admin has started it)
    "local-shared": {"backend": "local", "system_users": True, "share_identical_pages": True},
    "container": {"backend": "container", "image": "localhost/campushub-lab-slim:latest"},
    "container-cold": {"backend": "container", "image": "localhost/campushub-lab-slim:latest", "fast_start": False},
    "slurm": {"backend": "slurm", "cpu": 1, "memory": "1G"},
    "slurm-cold": {"backend": "slurm", "cpu": 1, "memory": "1G", "fast_start": False},
    # on the cluster of several hosts (scripts/slurm cluster start): each server on a compute node of its own host
    "slurm-nodes": {"backend": "slurm", "cpu": 1, "memory": "512M"},
}
#: servers run as users' own accounts: the benchmark makes one per user
NEEDS_ACCOUNTS = {"local", "local-cold", "local-noledger", "local-shared", "slurm", "slurm-cold", "slurm-nodes"}
#: the cluster of several hosts: the hub's address on its bridge, and its slurm.conf
NODES_HUB, NODES_CONF = "10.77.0.1", "/var/lib/campushub-slurm-net/slurm.conf"


def default_site(profile: str) -> dict:
    site = {
        "hub": {"admin_users": [ADMIN]},
        "auth": {"type": "remote_user", "required_groups": [GROUP], "proxy_secret": {"env": SECRET_ENV}},
        # 100 JupyterLab servers starting together on 2 cores need minutes without the fast path
        "spawner": {"start_timeout": 900, "http_timeout": 900, "poll_interval": 300},
        "profiles": [{"slug": profile, "name": profile, "default": True, **PROFILES[profile]}],
        "culler": {"enabled": False},
    }
    if profile == "local-noledger":
        site["ledger"] = {"enabled": False}
    if profile.startswith("container"):
        # the hub runs on this host; containers on the engine's default network call it back there
        port = free_port()
        site["hub"].update(hub_ip="0.0.0.0", hub_port=port)
        site["container"] = {
            "socket": os.environ.get("DOCKER_HOST", "unix:///run/podman/podman.sock"),
            "hub_connect_url": f"http://host.containers.internal:{port}",
        }
    if profile in ("slurm", "slurm-cold"):
        site["slurm"] = {"conf": os.environ.get("SLURM_CONF", "/var/lib/campushub-slurm/slurm.conf")}
    if profile == "slurm-nodes":  # the nodes reach the hub on the cluster's bridge
        port = free_port()
        site["hub"].update(hub_ip=NODES_HUB, hub_port=port)
        site["slurm"] = {
            "conf": NODES_CONF,
            "hub_host_runs_jobs": False,
            "hub_connect_url": f"http://{NODES_HUB}:{port}",
        }
    return site


def one_user(hub: Hub, name: str, profile: str) -> dict:
    """The timings of one user's way to ``1+1``, or the step that failed and why."""
    step = "login"
    try:
        t0 = time.perf_counter()
        session = hub.login(name, GROUP)
        t1 = time.perf_counter()
        token = hub.token(session, name)  # not timed: a browser has its cookie already
        step = "spawn"
        t2 = time.perf_counter()
        r = hub.api(session, "POST", f"users/{name}/server", json={"profile": profile})
        assert r.status_code in (201, 202), (r.status_code, r.text[:200])
        hub.wait_ready(session, name, timeout=900)
        t3 = time.perf_counter()
        step = "kernel"
        with Kernel.with_token(hub.url, name, token, timeout=300) as kernel:
            outcome = kernel.execute("1+1", timeout=300)
            t4 = time.perf_counter()
        assert outcome["result"] == "2", outcome
        return {
            "user": name,
            "login": t1 - t0,
            "spawn": t3 - t2,
            "kernel": t4 - t3,
            "total": (t1 - t0) + (t4 - t2),
            "token": token,
        }
    except Exception as e:  # noqa: BLE001 (every failure is counted, with its reason)
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        return {"user": name, "failed": step, "reason": reason}


def cleanup(hub: Hub, names: list[str], profile: str):
    """Stop every user's server (whatever their state) as the admin; then remove their accounts."""
    admin = hub.login(ADMIN, GROUP)
    for name in names:
        hub.api(admin, "DELETE", f"users/{name}/server")
    deadline = time.monotonic() + 300
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            r = hub.api(admin, "GET", f"users/{name}")
            if r.status_code == 404 or not r.json()["servers"]:
                pending.discard(name)
        time.sleep(0.5)
    if pending:
        print(f"  servers still running after 300 s: {sorted(pending)}", file=sys.stderr)
    if profile in NEEDS_ACCOUNTS:
        for name in set(names) - pending:  # never remove an account under a live server or job
            subprocess.run(["userdel", "--remove", name], capture_output=True)


def percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def rollup(pid: int, field: str = "Pss") -> float:
    """A field of a process's ``smaps_rollup`` (MB): ``Pss``, its own pages and its share of those it shares;
    ``Private_Dirty``, the pages it has written since its fork, its own alone."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        return next(int(line.split()[1]) for line in rollup if line.startswith(f"{field}:")) / 1024


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def idle_memory(hub: Hub, user: str, token: str) -> dict:
    """PSS of an idle server and of a kernel in it, while every user of the round still runs theirs.

    The server's processes are the kernel's parent (and, when forked, the kernel parent's
    parent): the server, and its kernel parent, which only forked servers have.
    """
    with Kernel.with_token(hub.url, user, token) as kernel:
        pid = int(kernel.execute("import os; os.getpid()")["result"])
        time.sleep(2)  # let the kernel settle
        server = [parent_of(pid)]
        with open(f"/proc/{server[0]}/cmdline") as cmdline:
            if "campushub-singleuser" not in cmdline.read():
                server.append(parent_of(server[0]))
        return {
            "server": round(sum(rollup(p) for p in server), 1),
            "kernel": round(rollup(pid), 1),
            "server_private": round(sum(rollup(p, "Private_Dirty") for p in server), 1),
            "kernel_private": round(rollup(pid, "Private_Dirty"), 1),
        }


#: what a process is, from its command line, for the CPU figures (first match); anything else is "other"
ROLES = (
    ("proxy", b"configurable-http-proxy"),
    ("fork server", b"-m\0campushub.server.forkserver"),
    ("hub", b"-m\0jupyterhub\0"),
    ("kernel parents", b"campushub-kernels"),
    ("kernels", b"ipykernel_launcher"),
    ("server processes", b"campushub-singleuser"),
)
#: the roles whose ended children were kernels: a kernel's CPU counts to its parent once the parent has reaped it
KERNELS_PARENTS = ("kernel parents", "server processes")
#: the roles that make up "servers": the users' servers, kernel parents and kernels, and the rest of the host
SERVERS = ("server processes", "kernel parents", "kernels", "other")


def cpu_ticks() -> tuple[int, dict[int, tuple[str, int, int]]]:
    """The host's busy CPU time (clock ticks, all cores) and each known process's: role, its own ticks, and those
    of its children that ended (and that it reaped)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    own = {}
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit():
                continue
            cmdline = (entry / "cmdline").read_bytes()
            role = next((name for name, mark in ROLES if mark in cmdline), None)
            if not cmdline and (entry / "comm").read_bytes() == b"ksmd\n":
                role = "ksmd"  # the kernel's thread that merges identical pages (KSM)
            if role:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                own[int(entry.name)] = (role, int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]))
        except (OSError, IndexError):
            continue  # it ended
    return busy, own


def cpu_spent(before: tuple, after: tuple, client: float) -> dict:
    """CPU seconds spent between two :func:`cpu_ticks`, by who spent them: the hub, the proxy, the fork servers,
    this benchmark's clients, and "servers": the users' server processes, kernel parents and kernels (those that
    ended counted to their parents), and the rest of the host (the engine or Slurm, the OS)."""
    tick = os.sysconf("SC_CLK_TCK")
    spent = dict.fromkeys(("hub", "proxy", "fork server", "ksmd", *SERVERS[:3]), 0.0)
    for pid, (role, ticks, children) in after[1].items():
        earlier = before[1].get(pid)
        same = earlier and earlier[0] == role
        spent[role] += (ticks - (earlier[1] if same else 0)) / tick
        if role in KERNELS_PARENTS:
            spent["kernels"] += (children - (earlier[2] if same else 0)) / tick
    spent["client"] = client
    spent["other"] = (after[0] - before[0]) / tick - sum(spent.values())
    spent["servers"] = sum(spent[role] for role in SERVERS)
    return spent


def mem_available() -> float:
    """The host's MemAvailable (MB)."""
    with open("/proc/meminfo") as meminfo:
        return next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:")) / 1024


def ksmd_seconds() -> float:
    """The CPU seconds the kernel's KSM thread has spent since the host started (0 without one)."""
    busy = cpu_ticks()[1]
    return sum(ticks for role, ticks, _children in busy.values() if role == "ksmd") / os.sysconf("SC_CLK_TCK")


def per_user_memory(hub: Hub, served: list[dict], available_before: float, settle: float) -> dict:
    """With a kernel open in every served user's server, ``settle`` seconds after the last opened: the PSS of all
    their processes (servers, kernel parents, kernels) and of the fork servers, divided by the users; how much
    MemAvailable fell per user since before the round; and what KSM's thread spent meanwhile."""
    users = {pwd.getpwnam(x["user"]).pw_uid for x in served}
    with ThreadPoolExecutor(max_workers=10) as pool:
        kernels = list(pool.map(lambda x: Kernel.with_token(hub.url, x["user"], x["token"], timeout=300), served))
    try:
        ksmd = ksmd_seconds()
        time.sleep(settle)  # let the kernels settle (and KSM merge pages)
        ksmd = ksmd_seconds() - ksmd
        total = 0.0
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and (
                    entry.stat().st_uid in users or b"campushub.server.forkserver" in (entry / "cmdline").read_bytes()
                ):
                    total += rollup(int(entry.name))
            except OSError:
                continue  # it ended, or is not ours to read
        fell = available_before - mem_available()
    finally:
        with ThreadPoolExecutor(max_workers=10) as pool:
            list(pool.map(lambda kernel: kernel.close(), kernels))
    return {
        "per_user_pss": round(total / len(served), 1),
        "per_user_available": round(fell / len(served), 1),
        "settle_s": settle,
        "ksmd_cpu_s": round(ksmd, 1),
    }


def run_round(hub: Hub, n: int, profile: str, round_no: int, repeat: int, settle: float = 3) -> dict:
    results, memory, cpu = [], [], []
    for r in range(repeat):
        names = [f"bench{round_no}-{r}-{i}" for i in range(n)]
        try:
            if profile in NEEDS_ACCOUNTS:
                for name in names:
                    subprocess.run(["useradd", "--create-home", name], capture_output=True, check=True)
            available = mem_available()
            ticks, client = cpu_ticks(), time.process_time()
            with ThreadPoolExecutor(max_workers=n) as pool:
                batch = list(pool.map(lambda name: one_user(hub, name, profile), names))
            cpu.append(cpu_spent(ticks, cpu_ticks(), time.process_time() - client))
            results += batch
            served = [x for x in batch if "token" in x]
            if r == 0 and served and not profile.startswith("container"):  # container processes have other pids inside
                memory.append(idle_memory(hub, served[0]["user"], served[0]["token"]))
                try:
                    memory[-1] |= per_user_memory(hub, served, available, settle)
                except Exception as e:  # noqa: BLE001 (counted with its reason, as a failed user is)
                    memory[-1]["per_user_error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        finally:
            cleanup(hub, names, profile)
    done = [{k: v for k, v in x.items() if k != "token"} for x in results if "failed" not in x]
    failed = [x for x in results if "failed" in x]
    summary = {
        "users": n,
        "profile": profile,
        "repeat": repeat,
        "n": len(results),
        "ok": len(done),
        "failures": failed,
        "memory": memory[0] if memory else None,
        "cpu": {role: round(sum(x[role] for x in cpu) / (n * len(cpu)), 3) for role in cpu[0]} if cpu else None,
    }
    for step in STEPS:
        values = sorted(x[step] for x in done)
        summary[step] = {"p50": percentile(values, 50), "p95": percentile(values, 95), "all": values} if values else {}
    return summary


def show(summary: dict) -> str:
    line = f"  {summary['profile']:<10} users={summary['users']:<3} ok={summary['ok']}/{summary['n']}"
    for step in STEPS:
        if summary[step]:
            line += f"  {step} p50={summary[step]['p50']:.2f}s p95={summary[step]['p95']:.2f}s"
    if summary["memory"]:
        m = summary["memory"]
        line += f"  PSS server={m['server']}MB kernel={m['kernel']}MB"
        line += f" (private dirty {m['server_private']} + {m['kernel_private']}MB)"
        if "per_user_pss" in m:
            line += f"  per user: PSS={m['per_user_pss']}MB MemAvailable-={m['per_user_available']}MB"
            if m["ksmd_cpu_s"]:
                line += f" (after {m['settle_s']:g} s, in which ksmd spent {m['ksmd_cpu_s']} s of CPU)"
        else:
            line += f"  per user: not measured ({m.get('per_user_error')})"
    if summary["cpu"]:
        cpu = summary["cpu"]
        line += "\n    CPU s per user: " + ", ".join(f"{role} {cpu[role]}" for role in cpu if role not in SERVERS)
        line += " (" + ", ".join(f"{role} {cpu[role]}" for role in SERVERS) + ")"
    reasons = sorted({f"{f['failed']}: {f['reason']}" for f in summary["failures"]})
    return line + "".join(f"\n    failed at {reason}" for reason in reasons)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="1,10,30", help="comma-separated user counts (default 1,10,30)")
    parser.add_argument(
        "--profiles",
        default="local",
        help="comma-separated, of: " + ", ".join(PROFILES) + " (default local)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="run every round this many times (default 1)")
    parser.add_argument(
        "--settle",
        type=float,
        default=3,
        help="seconds to wait, with a kernel open in every server, before the memory per user is read (default 3;"
        " longer for local-shared, whose pages the host's KSM merges over minutes)",
    )
    parser.add_argument("--site", type=Path, help="a site file to use (its profiles named in --profiles)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/spawn.json"))
    args = parser.parse_args(argv)

    import yaml

    ensure_account()
    folder = Path(tempfile.mkdtemp(prefix="campushub-bench-"))
    folder.chmod(0o755)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    speed = machine_speed()
    print(f"machine: {speed:.2f} s of CPU to import a cold server's modules (imports.py's campushub-singleuser)")
    rounds = []
    for profile in args.profiles.split(","):
        site = yaml.safe_load(args.site.read_text()) if args.site else default_site(profile)
        hub = Hub(folder / profile, site).start()
        try:
            for n in (int(x) for x in args.users.split(",")):
                print(f"spawn: {n} user(s) on profile {profile!r} ...", file=sys.stderr, flush=True)
                summary = run_round(hub, n, profile, len(rounds), args.repeat, args.settle)
                rounds.append(summary)
                print(show(summary), flush=True)
                result = {"benchmark": "spawn", "machine_import_cpu_s": speed, "rounds": rounds}
                args.out.write_text(json.dumps(result, indent=2))
        finally:
            hub.stop()
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
