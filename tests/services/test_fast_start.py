"""Servers forked from a pre-imported parent (issue 9): fast, and still each user's own.

Every local-profile test elsewhere runs on this fast path (it is the default); these tests
check what forking must not change: whose process it is, what it can reach, what it holds.
"""

import ast
import asyncio
import contextlib
import glob
import logging
import os
import pwd
import re
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

from campushub.backends.local import forking
from harness import KERNELS_PARENT, Kernel, base_site

USERS = ("cht-fast-a", "cht-fast-b")
OTHER = "cht-fast-c"
PORTS = "cht-fast-p"
SLOW = {"slug": "slow", "name": "Started the normal way", "backend": "local", "system_users": True, "fast_start": False}
SHARED = {"slug": "shared", "name": "Shared", "backend": "local", "system_users": True, "share_identical_pages": True}


@pytest.fixture(scope="module")
def hub(hubs, accounts):
    accounts(*USERS, OTHER, PORTS)
    site = base_site()
    site["profiles"] = [*site["profiles"], SLOW, SHARED]
    hub = hubs.start(site, "fast")
    yield hub
    hub.stop()


def status(pid: int) -> dict:
    return dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines())


def server_pid(hub, user: str, token: str) -> int:
    """The server's pid: its kernel's parent, or (forked) the parent of its kernel's parent."""
    parent = int(hub.run_code(user, token, "import os; os.getppid()"))
    if "campushub-singleuser" in Path(f"/proc/{parent}/cmdline").read_text():
        return parent  # started the normal way: kernels are its own children
    return int(status(parent)["PPid"])


def started(hub, user: str, profile: str = "local") -> tuple[object, str, int]:
    s, token = hub.with_server(user, profile)
    return s, token, server_pid(hub, user, token)


def memory_of(pid: int) -> bytes:
    """Everything a process holds: its readable memory, and its environment block."""
    found = [Path(f"/proc/{pid}/environ").read_bytes()]
    with open(f"/proc/{pid}/mem", "rb") as mem:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            span, perms = line.split()[:2]
            if "r" not in perms or line.rstrip().endswith(("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                found.append(mem.read(end - start))
            except OSError:
                continue
    return b"".join(found)


def test_a_forked_server_is_exactly_its_user(hub):
    import pwd

    user = USERS[0]
    s, token, pid = started(hub, user)
    account = pwd.getpwnam(user)
    fields = status(pid)
    assert fields["Uid"].split() == [str(account.pw_uid)] * 4 and fields["Gid"].split() == [str(account.pw_gid)] * 4
    assert set(fields["Groups"].split()) == {str(g) for g in os.getgrouplist(user, account.pw_gid)}
    parent = int(fields["PPid"])
    assert "campushub.server.forkserver" in Path(f"/proc/{parent}/cmdline").read_text()  # it was forked
    # the parent never saw the user's token: not in its memory, not in its environment
    assert token.encode() not in memory_of(parent)
    server_token = hub.run_code(user, token, "import os; os.environ['JUPYTERHUB_API_TOKEN']").strip("'")
    assert server_token.encode() not in memory_of(parent)
    assert server_token.encode() in memory_of(pid)  # (the search finds what is there)
    hub.stop_server(s, user)


def command_line(pid: int) -> str:
    return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode().strip()


def test_forked_processes_say_who_they_are(hub):
    """A forked server, its kernel parent and its kernel show their own command lines (in ps and /proc), and the port
    a server holds is named with its account and command: on main they showed the fork server's, and `campushub up`
    blamed campushub for a user's port (issue 19)."""
    from campushub.ops.processes import holder_of

    user = USERS[1]
    s, token, pid = started(hub, user)
    try:
        assert command_line(pid) == f"campushub-singleuser {user}"
        with Kernel.with_token(hub.url, user, token) as kernel:
            found = kernel.execute("import os; os.getpid(), os.environ['JUPYTERHUB_SERVICE_URL']")["result"]
            kernel_pid, url = ast.literal_eval(found)
            assert command_line(kernel_pid).split()[1:4] == ["-m", "ipykernel_launcher", "-f"]
            assert command_line(int(status(kernel_pid)["PPid"])) == f"campushub-kernels {user}"
            # its command line was given to ipykernel as config, not parsed: the same file, and it ends with its parent
            given = "from ipykernel.kernelapp import IPKernelApp as A; import sys; a = A.instance()"
            given += "; a.connection_file == sys.argv[2], a.parent_handle == os.getppid(), a.extra_args"
            assert kernel.execute(given)["result"] == "(True, True, [])"
        port = int(url.split(":")[2].split("/")[0])
        assert holder_of(port) == f"pid {pid}, {user}: campushub-singleuser {user}"
    finally:
        hub.stop_server(s, user)


def test_one_users_server_cannot_reach_anothers_or_the_fork_server(hub):
    a, b = USERS
    sa, token_a, _ = started(hub, a)
    sb, _token_b, pid_b = started(hub, b)
    sockets = glob.glob("/tmp/campushub-*/forkserver.sock")
    code = f"""
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def refused(action):
    try:
        action()
        return False
    except OSError:
        return True
def connect(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
(refused(lambda: os.kill({pid_b}, 0)),
 libc.ptrace(16, {pid_b}, 0, 0) == -1 and ctypes.get_errno() == 1,
 refused(lambda: open('/proc/{pid_b}/environ').read()),
 all(refused(lambda p=p: connect(p)) for p in {sockets!r}))
"""
    assert sockets
    assert hub.run_code(a, token_a, code) == "(True, True, True, True)"
    for user, s in ((a, sa), (b, sb)):
        hub.stop_server(s, user)


def test_every_fork_has_its_own_random_state(hub):
    values = []
    for user in USERS:
        s, token, _ = started(hub, user)
        for _ in range(2):  # two kernels each: forked from the same kernel parent
            with Kernel.with_token(hub.url, user, token) as kernel:
                outcome = kernel.execute(
                    "import random, secrets, ssl; (random.getrandbits(64),"
                    " secrets.token_hex(8), ssl.RAND_bytes(8).hex())"
                )
            values.append(outcome["result"])
        values.append(hub.run_code(user, token, "import random; random.getrandbits(64)"))
        hub.stop_server(s, user)
    numbers = [v for v in values if not v.startswith("(")]
    triples = [re.findall(r"\w+", v) for v in values if v.startswith("(")]
    parts = [x for t in triples for x in t] + numbers
    assert len(set(parts)) == len(parts), values


def test_the_normal_way_still_serves_and_says_why_it_is_used(hub):
    user = USERS[0]
    s, token, pid = started(hub, user, profile="slow")  # fast_start: false
    assert "campushub-singleuser" in Path(f"/proc/{pid}/cmdline").read_text()
    assert hub.run_code(user, token, "1+1") == "2"
    hub.stop_server(s, user)
    # the fork server's socket gone: the start takes the normal way, and the log says why
    for path in glob.glob("/tmp/campushub-*/forkserver.sock"):
        if os.stat(path).st_uid == 0:
            os.rename(path, path + ".away")
    try:
        s, token, pid = started(hub, user)
        assert "campushub-singleuser" in Path(f"/proc/{pid}/cmdline").read_text()
        assert f"Starting {user} the normal way: the fork server" in hub.log.read_text()
        hub.stop_server(s, user)
    finally:
        for path in glob.glob("/tmp/campushub-*/forkserver.sock.away"):
            os.rename(path, path.removesuffix(".away"))


def test_a_dead_fork_server_is_replaced_and_so_is_one_with_old_packages(hub):
    user = USERS[1]
    s, _token, pid = started(hub, user)
    parent = int(status(pid)["PPid"])
    folder = os.path.dirname(fork_servers_socket(parent))
    hub.stop_server(s, user)
    os.kill(parent, signal.SIGKILL)
    s, _token, pid = started(hub, user)  # a new parent, not the normal way
    second = int(status(pid)["PPid"])
    assert second != parent and "campushub.server.forkserver" in Path(f"/proc/{second}/cmdline").read_text()
    assert not os.path.exists(folder), "the dead parent's socket folder was left in /tmp"
    hub.stop_server(s, user)
    # a package installed into the environment the servers run from
    marker = os.path.join(sysconfig.get_paths()["purelib"], "campushub_test_marker-0.0.dist-info")
    os.makedirs(marker)
    try:
        s, _token, pid = started(hub, user)
        third = int(status(pid)["PPid"])
        assert third != second, "the parent was not replaced after the packages changed"
        assert "changed: replacing its fork server" in hub.log.read_text()
        hub.stop_server(s, user)
    finally:
        os.rmdir(marker)


def fork_servers_socket(pid: int) -> str:
    """The socket a fork server listens on, from its command line (``python -m campushub.server.forkserver PATH``)."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[3].decode()


def test_a_hub_that_ends_leaves_no_fork_server_folder(hub_factory, accounts):
    """The fork server's socket is in a folder the hub made in /tmp: one left for each hub start adds up."""
    (user,) = accounts("cht-fast-gone")
    hub = hub_factory(base_site())
    s, token = hub.with_server(user)
    parent = int(status(server_pid(hub, user, token))["PPid"])
    folder = os.path.dirname(fork_servers_socket(parent))
    assert os.path.isdir(folder)
    hub.stop_server(s, user)
    hub.stop()
    deadline = time.monotonic() + 30
    while Path(f"/proc/{parent}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(folder), "the fork server's folder outlived its hub"


def test_a_fork_whose_pid_the_hub_did_not_save_ends(accounts, capfd):
    """The hub killed between the fork and the save of its pid: the child must end, not serve for nobody."""
    user = accounts("cht-fast-gate")[0]
    account = pwd.getpwnam(user)
    spec = {
        "argv": [str(Path(sys.executable).parent / "campushub-singleuser")],
        "env": {"PATH": "/usr/bin:/bin", "JUPYTERHUB_USER": user},
        "cwd": account.pw_dir,
        "uid": account.pw_uid,
        "gid": account.pw_gid,
        "groups": [account.pw_gid],
        "umask": 0o022,
    }
    parent = forking.Parent(sys.executable)
    forked = []

    def killed(pid: int):
        forked.append(pid)
        raise RuntimeError("the hub was killed here")

    async def fork():
        await parent.ensure(logging.getLogger("test"))
        try:
            with pytest.raises(RuntimeError, match="killed here"):
                await parent.fork(spec, killed)
            deadline = time.monotonic() + 30
            while os.path.exists(f"/proc/{forked[0]}") and status(forked[0])["State"].split()[0] != "Z":
                assert time.monotonic() < deadline, f"the child {forked[0]} still runs"
                await asyncio.sleep(0.05)
        finally:
            await parent.stop()

    asyncio.run(fork())
    assert "forkserver: the hub stopped before it recorded this server's start; ending it" in capfd.readouterr().err


def test_starts_take_turns_and_the_spawn_page_says_so(hub, accounts):
    """Five cold starts at once on a machine of fewer cores: the later ones wait for a turn, and see their place."""
    import json
    import threading
    import time

    users = accounts(*(f"cht-turn-{i}" for i in range(5)))
    sessions = {user: hub.login(user) for user in users}
    messages = {user: [] for user in users}

    def start_and_follow(user):
        threading.Thread(
            target=hub.api, args=(sessions[user], "POST", f"users/{user}/server"), kwargs={"json": {"profile": "slow"}}
        ).start()
        while not hub.whoami_user(sessions[user], user)["servers"]:  # until its start request is in
            time.sleep(0.02)
        with hub.api(sessions[user], "GET", f"users/{user}/server/progress", stream=True, timeout=120) as events:
            for line in events.iter_lines(decode_unicode=True):
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    messages[user].append(event.get("message", ""))
                    if event.get("ready") or event.get("failed"):
                        break

    followers = [threading.Thread(target=start_and_follow, args=(user,)) for user in users]
    for follower in followers:
        follower.start()
    for follower in followers:
        follower.join()
    waited = [m for user in users for m in messages[user] if m.startswith("Waiting for a turn:")]
    assert waited, messages  # more starts than cores: some waited, and were told their place
    assert all("ahead of you" in m or "you are next" in m for m in waited), waited
    for user in users:
        hub.wait_ready(sessions[user], user)
        hub.stop_server(sessions[user], user)


HELLO = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"op": "hello"}\n')
    print(s.recv(4096).decode() or "closed")
except (BrokenPipeError, ConnectionResetError):
    print("closed")
"""


def test_the_fork_server_refuses_another_account_that_reaches_its_socket(hub):
    """Its socket sits in a 0700 folder, so no other account reaches it; with the way opened, its own check (the
    peer's uid, SO_PEERCRED: only its account and root) still refuses. Removing that check changed no test before
    (issue 20)."""
    s, _token, pid = started(hub, USERS[1])
    path = command_line(int(status(pid)["PPid"])).split()[-1]  # the socket of this hub's fork server
    folder = os.path.dirname(path)
    modes = {p: os.stat(p).st_mode & 0o777 for p in (folder, path)}
    account = pwd.getpwnam(USERS[0])
    try:
        os.chmod(folder, 0o711)
        os.chmod(path, 0o666)
        as_user = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups"]
        refused = subprocess.run([*as_user, "/usr/bin/python3", "-c", HELLO, path], capture_output=True, text=True)
        assert refused.stdout.strip() == "closed", (refused.stdout, refused.stderr)  # without a word
        answered = subprocess.run(["/usr/bin/python3", "-c", HELLO, path], capture_output=True, text=True)
        assert "fingerprint" in answered.stdout, answered  # root: the hub's own account here
    finally:
        for p, mode in modes.items():
            os.chmod(p, mode)
        hub.stop_server(s, USERS[1])


LAYOUT = "import ctypes; (hash('campushub'), ctypes.cast(ctypes.pythonapi.Py_Initialize, ctypes.c_void_p).value)"


def test_forked_servers_share_the_parents_layout_and_the_normal_way_does_not(hub):
    """What fast start gives up (docs/fast-start.md): servers forked from one parent, and their kernels, share its
    hash() seed and memory layout (ASLR), so one user's exploit of their own server knows another's addresses; a
    profile with fast_start: false gives each server, and each kernel, its own."""
    layouts = {}
    for profile in ("local", "slow"):
        for user in USERS:
            s, token, _ = started(hub, user, profile=profile)
            layouts[profile, user] = hub.run_code(user, token, LAYOUT)
            hub.stop_server(s, user)
    assert layouts["local", USERS[0]] == layouts["local", USERS[1]], layouts
    assert layouts["slow", USERS[0]] != layouts["slow", USERS[1]], layouts


def test_a_new_kernels_first_execute_needs_no_second_nudge(hub_factory, hub_root, accounts):
    """jupyter_server asks a new kernel for its info every half second until its IOPub watcher has heard the kernel;
    a forked kernel's watcher must hear it the first time (campushub.server.kernels waits for the kernel's bind)."""
    (user,) = accounts("cht-nudge")
    extra = Path(tempfile.mkdtemp(prefix="server-debug-", dir=hub_root))
    extra.chmod(0o755)
    (extra / "debug.py").write_text("c.Spawner.args = ['--ServerApp.log_level=DEBUG']\n")
    hub = hub_factory(base_site(hub={"extra_config_dir": str(extra)}))
    session = hub.login(user)
    hub.start_server(session, user)
    token = hub.token(session, user)
    for _ in range(10):  # before the fix, about 6 in 10 new kernels needed a second nudge
        with Kernel.with_token(hub.url, user, token, timeout=60) as kernel:
            assert kernel.execute("1+1", timeout=60)["result"] == "2"
    log = (Path(pwd.getpwnam(user).pw_dir) / ".campushub-server.log").read_text()  # the server's own output
    assert log.count("Nudge: attempt 1 on kernel") == 10 and "Nudge: attempt 2" not in log


def test_a_forked_kernel_that_dies_is_started_again_by_its_server(hub):
    """As jupyter_client's restarter does for a kernel it launched (one of two hundred forked kernels in a burst
    lost its port to another's and ended; the restart then failed on the ended kernel, and the user's websocket
    got a 500 a minute later)."""
    user = USERS[0]
    s, token, _pid = started(hub, user)
    with Kernel.with_token(hub.url, user, token, timeout=30) as kernel:
        first = kernel.execute("import os; os.getpid()")["result"]
        assert kernel.execute("os.kill(os.getpid(), 9)")["died"]
        # a request sent while the kernel is down is lost, and the server's REST state of a kernel restarted
        # unasked can stay "busy" (its last status before it died): ask again, on a new connection, until it answers
        deadline = time.monotonic() + 90
        while not (again := kernel.answer("import os; os.getpid()", timeout=10)) or again["result"] is None:
            assert not (again and again["error"]) and time.monotonic() < deadline, again
            kernel.reconnect()
        assert again["result"] != first, (first, again)
        assert kernel.execute(KERNELS_PARENT)["result"] == repr(f"campushub-kernels {user}")
    hub.stop_server(s, user)


#: code for a kernel: its connection (transport, address, ports), as its own connection file says
KERNEL_CONNECTION = (
    "from ipykernel.kernelapp import IPKernelApp as a; a = a.instance(); "
    "(a.transport, a.ip, {n: getattr(a, n + '_port') for n in ('shell', 'iopub', 'stdin', 'control', 'hb')})"
)


def answer_after_restart(kernel: Kernel, code: str) -> dict:
    """The answer to ``code`` from a kernel its server restarts: a request sent while the kernel is down is lost,
    and the server's REST state of a kernel restarted unasked can stay "busy" (its last status before it died): ask
    again, on a new connection, until it answers."""
    deadline = time.monotonic() + 90
    while not (again := kernel.answer(code, timeout=10)) or again["result"] is None:
        assert not (again and again["error"]) and time.monotonic() < deadline, again
        kernel.reconnect()
    return again


def tcp_listeners(pid: int) -> set[int]:
    """The TCP ports a process listens on (its sockets' inodes in the host's tables)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_a_forked_kernels_channels_are_on_no_port_and_its_sockets_are_its_users_alone(hub):
    """A kernel's TCP ports on the loopback are open to every user's code, and one kernel in a class of 100 opening
    theirs at once never started: another server's kernel bound a port jupyter_client had chosen for it. A forked
    kernel's channels are Unix sockets in a folder only its user can open; its restarts keep them (the server's open
    channels stay connected), and the server's activity watcher (the culler's source) still hears it."""
    user = PORTS
    s, token, _pid = started(hub, user)
    account = pwd.getpwnam(user)
    with Kernel.with_token(hub.url, user, token, timeout=30) as kernel:
        pid = int(kernel.execute("import os; os.getpid()")["result"])
        transport, ip, ports = ast.literal_eval(kernel.execute(KERNEL_CONNECTION)["result"])
        # ipykernel's pipe for its subprocesses' output stays on TCP (it takes only what carries a key of its own)
        pipe = int(kernel.execute("get_ipython().kernel.iopub_thread._pipe_port")["result"])
        assert transport == "ipc" and tcp_listeners(pid) == {pipe}, (transport, tcp_listeners(pid), pipe)
        folder = os.stat(os.path.dirname(ip))
        assert (folder.st_uid, folder.st_mode & 0o777) == (account.pw_uid, 0o700), folder
        assert all(Path(f"{ip}-{port}").is_socket() for port in ports.values()), (ip, ports)
        assert kernel.execute("os.kill(os.getpid(), 9)")["died"]
        assert ast.literal_eval(answer_after_restart(kernel, KERNEL_CONNECTION)["result"]) == (transport, ip, ports)
        assert kernel.execute(KERNELS_PARENT)["result"] == repr(f"campushub-kernels {user}")
        model = kernel.http.get(f"{kernel.base}/{kernel.id}", timeout=30).json()
        assert kernel.execute("1+1")["result"] == "2"
        later = kernel.http.get(f"{kernel.base}/{kernel.id}", timeout=30).json()
        assert later["last_activity"] > model["last_activity"] and later["execution_state"] == "idle", later
    hub.stop_server(s, user)
    assert not os.path.exists(os.path.dirname(ip)), "the sockets' folder outlived its server"


def ksm(pid: int) -> dict:
    """What the host's kernel says of a process's part in merging identical pages (KSM)."""
    return dict(line.rsplit(" ", 1) for line in Path(f"/proc/{pid}/ksm_stat").read_text().splitlines())


def test_the_servers_of_a_sharing_profile_merge_their_identical_pages_and_their_kernels_never_do(hub):
    knobs = {name: Path(f"/sys/kernel/mm/ksm/{name}") for name in ("run", "pages_to_scan", "sleep_millisecs")}
    before = {name: knob.read_text().strip() for name, knob in knobs.items()}
    sessions = []
    try:
        for name, value in (("pages_to_scan", "2000"), ("sleep_millisecs", "10"), ("run", "1")):
            knobs[name].write_text(value)  # KSM as an admin starts it, scanning fast enough for a test
        with contextlib.ExitStack() as open_kernels:
            servers, kernels = {}, {}
            for user in USERS:
                s, token, servers[user] = started(hub, user, "shared")
                sessions.append((s, user))
                kernel = open_kernels.enter_context(Kernel.with_token(hub.url, user, token))
                kernels[user] = int(kernel.execute("import os; os.getpid()")["result"])
            other = hub.login(OTHER)  # a server of a profile without sharing, beside them
            hub.start_server(other, OTHER)
            sessions.append((other, OTHER))
            unshared = server_pid(hub, OTHER, hub.token(other, OTHER))
            for user, pid in servers.items():
                assert ksm(pid)["ksm_merge_any:"] == "yes", user
                for process in (int(status(kernels[user])["PPid"]), kernels[user]):  # its kernel parent, its kernel
                    assert ksm(process)["ksm_merge_any:"] == "no", user
            assert ksm(unshared)["ksm_merge_any:"] == "no"
            deadline = time.monotonic() + 120
            while not all(int(ksm(pid)["ksm_merging_pages"]) > 1000 for pid in servers.values()):
                assert time.monotonic() < deadline, {pid: ksm(pid) for pid in servers.values()}
                time.sleep(1)
            assert ksm(unshared)["ksm_merging_pages"] == "0"
            assert all(ksm(kernels[user])["ksm_merging_pages"] == "0" for user in USERS)
    finally:
        for s, user in sessions:
            hub.stop_server(s, user)
        knobs["run"].write_text("2")  # unmerge, then leave KSM as it was
        for name in ("pages_to_scan", "sleep_millisecs", "run"):
            knobs[name].write_text(before[name])
