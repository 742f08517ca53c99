"""Where a local server's output goes: its user's own log, never the hub's (campushub.server.output).

The attacker is a user with a notebook: whatever their kernel writes to its standard output or error, or has a
child write, must not land in the hub's log, where it would read as the hub's own lines.
"""

import os
import pwd
import stat
import time
from pathlib import Path

import pytest

from harness import EMBEDDED, Kernel, base_site, last_end

USERS = {"local": "cht-out-a", "slow": "cht-out-b"}
BROKEN = "cht-out-c"
ENDS = "cht-out-d"
SLOW = {"slug": "slow", "name": "Started the normal way", "backend": "local", "system_users": True, "fast_start": False}
FORGE = (
    "import os, subprocess\n"
    "os.write(1, b'[I 2026-12-07 JupyterHub log:192] 200 GET /hub/admin (admin@127.0.0.1) forged-{0}-out\\n')\n"
    "os.write(2, b'forged-{0}-err\\n')\n"
    "subprocess.run(['sh', '-c', 'echo forged-{0}-child >&2'])\n"
    "os.getpid()"
)


@pytest.fixture(scope="module")
def hub(hubs, accounts):
    accounts(*USERS.values(), BROKEN, ENDS)
    site = base_site()
    site["profiles"] = [*site["profiles"], SLOW]
    site["spawner"] = {"poll_interval": 5}  # a server that ended is noticed within seconds
    hub = hubs.start(site, "output")
    yield hub
    hub.stop()


def server_log(user: str) -> Path:
    return Path(pwd.getpwnam(user).pw_dir) / ".campushub-server.log"


def users_processes(pid: int, uid: int) -> list[int]:
    """``pid`` and its ancestors that run as ``uid``: the kernel, its kernel parent (forked), its server."""
    found = []
    while pid > 1 and os.stat(f"/proc/{pid}").st_uid == uid:
        found.append(pid)
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return found


def open_files(pid: int) -> set[str]:
    """What the process holds open: paths, and for Unix sockets the path of the socket they were accepted on."""
    bound = {}
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8:
            bound[f"socket:[{fields[6]}]"] = fields[7]
    folder = f"/proc/{pid}/fd"
    return {bound.get(target, target) for target in (os.readlink(f"{folder}/{fd}") for fd in os.listdir(folder))}


@pytest.mark.parametrize("profile", ["local", "slow"])
def test_a_users_code_writes_into_its_own_log_not_the_hubs(hub, profile):
    """Forked or started the normal way: the kernel's writes to fds 1 and 2, and its child's, go to the user's
    0600 log; no process of the user's server holds the hub's log open, nor (forked) the hub's connection to the
    fork server's child."""
    user = USERS[profile]
    s, token = hub.with_server(user, profile)
    with Kernel.with_token(hub.url, user, token, timeout=60) as kernel:
        kernel_pid = int(kernel.execute(FORGE.format(profile), timeout=60)["result"])
        processes = users_processes(kernel_pid, pwd.getpwnam(user).pw_uid)
        assert len(processes) >= 2, processes  # the kernel and its server (and, forked, the kernel parent)
        for pid in processes:
            held = open_files(pid)
            assert str(hub.log) not in held and not any(f.endswith("forkserver.sock") for f in held), (pid, held)
    time.sleep(1)  # the child's line is written before the cell answers; give the hub's log a moment all the same
    assert f"forged-{profile}" not in hub.log.read_text()
    log = server_log(user)
    written = log.read_text()
    for end in ("out", "err", "child"):
        assert f"forged-{profile}-{end}" in written, written[-2000:]
    assert "ServerApp" in written  # the server's own lines are there too
    info = log.stat()
    assert info.st_uid == pwd.getpwnam(user).pw_uid and stat.S_IMODE(info.st_mode) == 0o600
    hub.stop_server(s, user)


def test_the_log_is_never_followed_through_a_link(hub):
    """A link the user left where the log goes is not followed: the server starts, its output goes nowhere (not to
    the hub's log), and the file the link names is untouched."""
    user = USERS["local"]
    account = pwd.getpwnam(user)
    target = Path(account.pw_dir) / "notes.txt"
    target.write_text("mine\n")
    os.chown(target, account.pw_uid, account.pw_gid)
    log = server_log(user)
    log.unlink(missing_ok=True)
    log.symlink_to(target)
    try:
        s, token = hub.with_server(user)
        assert hub.run_code(user, token, "import os; os.write(2, b'through-the-link\\n'); 1") == "1"
        assert target.read_text() == "mine\n" and log.is_symlink()
        assert "through-the-link" not in hub.log.read_text()
        assert f"campushub: the server's output goes nowhere: {log}" in hub.log.read_text()
        hub.stop_server(s, user)
    finally:
        log.unlink(missing_ok=True)


def test_a_server_that_fails_to_start_shows_its_last_lines(hub):
    """A user's own config that ends the server: the home page says it did not start, with its log's last lines."""
    config = Path(pwd.getpwnam(BROKEN).pw_dir) / ".jupyter"
    config.mkdir(exist_ok=True)
    (config / "jupyter_server_config.py").write_text("raise SystemExit('cht-out: this config ends the server')\n")
    try:
        s = hub.login(BROKEN)
        r = hub.api(s, "POST", f"users/{BROKEN}/server", json={"profile": "local"})
        assert r.status_code in (201, 202, 500), r.text  # 500: it failed before the request's answer
        hub.wait_no_server(s, BROKEN, why="the start did not fail")
        end = last_end(hub, s)
        assert end["words"] == "Your server did not start.", end
        assert "cht-out: this config ends the server" in end["log"], end
        assert "cht-out: this config ends the server" not in hub.log.read_text()
    finally:
        (config / "jupyter_server_config.py").unlink()


def test_a_server_that_ends_by_itself_shows_its_last_lines(hub):
    """Its server killed from its own notebook after a last word: the hub's poll finds it ended, and the home page
    shows that word from the log."""
    s, token = hub.with_server(ENDS)
    with Kernel.with_token(hub.url, ENDS, token, timeout=60) as kernel:
        kernel.execute(
            "import os, signal\n"
            "os.write(2, b'cht-out: last words\\n')\n"
            "parent = os.getppid()\n"
            "server = int(open(f'/proc/{parent}/stat').read().rsplit(')', 1)[1].split()[1])\n"
            "os.kill(server, signal.SIGKILL)",
            timeout=30,
        )
    hub.wait_no_server(s, ENDS, 90, "the hub did not notice that the server ended")
    end = last_end(hub, s)
    assert end["words"] == "Your server ended by itself.", end
    assert "cht-out: last words" in end["log"], end


def test_the_embedded_defaults_servers_write_to_their_folders(hub_factory):
    """Servers as the hub's own account: the log is in the user's folder of the state directory."""
    hub = hub_factory(EMBEDDED)
    session, r = hub.password_login("ada", (hub.state / "shared_password").read_text().strip())
    assert r.status_code == 302, r.text[:300]
    hub.start_server(session, "ada")
    token = hub.token(session, "ada")
    assert hub.run_code("ada", token, "import os; os.write(1, b'cht-out: embedded\\n'); 1") == "1"
    log = hub.state / "home" / "ada" / ".campushub-server.log"
    assert "cht-out: embedded" in log.read_text() and "cht-out: embedded" not in hub.log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
