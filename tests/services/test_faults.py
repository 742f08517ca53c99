"""Faults `campushub up` must survive on real processes: a port another program holds, a hub that fails after
its proxy started, a read-only or full state directory. Each one starts nothing and leaves nothing running."""

import html
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness import CAMPUSHUB, EMBEDDED, base_site, proxies_on

TIMEOUT = 60  # s: on main, a taken proxy_api_port kept `campushub up` waiting for over two minutes


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def up(hub, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    command = [CAMPUSHUB, "up", "--config", str(hub.config)] + (["--as-user", hub.as_user] if hub.as_user else [])
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=hub.env)


def ports_of(hub) -> dict[str, int]:
    return {
        "hub.bind_url": hub.port,
        "hub.hub_port": hub.site["hub"]["hub_port"],
        "hub.proxy_api_port": hub.site["hub"]["proxy_api_port"],
    }


@pytest.mark.parametrize("field", ["hub.proxy_api_port", "hub.hub_port", "hub.bind_url"])
def test_a_port_another_program_holds_is_named_and_nothing_starts(field, hub_factory):
    hub = hub_factory(EMBEDDED, start=False)
    ports = ports_of(hub)
    with socket.socket() as holder:  # this test's own process plays the other program
        holder.bind(("127.0.0.1", ports[field]))
        holder.listen()
        expected = f"{field}: port {ports[field]} on 127.0.0.1 is in use by pid {os.getpid()}"

        check = subprocess.run([CAMPUSHUB, "check", "--config", str(hub.config)], capture_output=True, text=True)
        assert check.returncode == 2 and expected in check.stderr, check.stderr

        started = time.monotonic()
        result = up(hub)
        assert result.returncode == 2 and expected in result.stderr, result.stderr[-2000:]
        assert time.monotonic() - started < 30
        assert not proxies_on(ports["hub.proxy_api_port"])
        assert not any(listening(port) for name, port in ports.items() if name != field)
        assert not hub.state.exists()


def test_a_hub_that_fails_after_its_proxy_started_leaves_no_proxy(hub_factory, hub_root):
    # a managed service that exits at once makes JupyterHub exit after it has started the proxy
    extra = Path(tempfile.mkdtemp(prefix="broken-service-", dir=hub_root))
    extra.chmod(0o755)
    (extra / "broken.py").write_text(
        'c.JupyterHub.services.append({"name": "broken", "url": "http://127.0.0.1:9", "command": ["/bin/false"]})\n'
    )
    hub = hub_factory({**EMBEDDED, "hub": {"extra_config_dir": str(extra)}}, start=False)
    api_port = hub.site["hub"]["proxy_api_port"]
    result = up(hub)
    assert result.returncode != 0
    assert "Service broken exited" in result.stderr and "Starting proxy" in result.stderr, result.stderr[-2000:]
    assert not proxies_on(api_port), "the failed hub's proxy is still running"
    assert not listening(hub.port) and not listening(api_port)


def test_a_hub_killed_under_campushub_up_leaves_no_proxy(hub_factory):
    hub = hub_factory(EMBEDDED)
    api_port = hub.site["hub"]["proxy_api_port"]
    assert proxies_on(api_port)
    os.kill(int((hub.state / "hub.pid").read_text()), signal.SIGKILL)  # as the kernel's OOM killer would
    assert hub.process.wait(30) != 0
    assert not proxies_on(api_port) and not listening(hub.port)
    assert not (hub.state / "hub.pid").exists()


@pytest.fixture
def small_disk(tmpfs):
    """A 4 MiB tmpfs: a state directory's disk that the test can fill, or make read-only."""
    return tmpfs("4m")


def test_a_read_only_state_dir_starts_nothing(small_disk, hub_factory):
    state = small_disk / "state"
    state.mkdir(mode=0o700)
    (state / "jupyterhub_cookie_secret").write_text("00" * 32 + "\n")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    hub = hub_factory({**EMBEDDED, "hub": {"state_dir": str(state)}}, start=False)
    result = up(hub)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"hub.state_dir: {state} is on a read-only file system" in result.stderr
    assert not proxies_on(hub.site["hub"]["proxy_api_port"]) and not listening(hub.port)


def test_a_full_state_dir_starts_nothing(small_disk, hub_factory):
    state = small_disk / "state"
    state.mkdir(mode=0o700)
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError, match="No space left"):
        while True:
            os.write(fd, b"\0" * 65536)
    os.close(fd)
    hub = hub_factory({**EMBEDDED, "hub": {"state_dir": str(state)}}, start=False)
    result = up(hub)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"hub.state_dir: no space left for {state}" in result.stderr
    assert not proxies_on(hub.site["hub"]["proxy_api_port"]) and not listening(hub.port)


def test_a_start_on_a_machine_short_of_memory_is_refused_in_words(hub_factory, accounts):
    hub = hub_factory(base_site(spawner={"reserve_memory": "64T"}))  # more than any machine here has
    (ann,) = accounts("chf-ann")
    session = hub.login(ann)
    r = hub.api(session, "POST", f"users/{ann}/server")
    assert r.status_code == 503 and "short of memory" in r.json()["message"], r.text
    assert not hub.whoami_user(session, ann)["servers"]
    assert "was not started. Try again in a few minutes." in html.unescape(hub.get(session, "/hub/home").text)
