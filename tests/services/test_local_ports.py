"""A local server's port taken first by another process (another user's code, a leftover server): the hub must
not route the user there, where their cookies and token would go to whoever listens."""

from __future__ import annotations

import html
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import base_site, free_port, last_end, wait_listening


def test_a_port_another_process_took_first_is_never_routed_to(hub_factory, hub_root, accounts):
    (ann,) = accounts("chp-ann")
    port = free_port()
    extra = Path(tempfile.mkdtemp(prefix="fixed-port-", dir=hub_root))
    extra.chmod(0o755)
    # the race, made certain: a hub's own config (hub.extra_config_dir runs in the hub's process) has the port it
    # picks for a server be the one the squatter took just before the server could
    (extra / "port.py").write_text(
        f"import campushub.backends.local.spawner as local\nlocal.random_port = lambda: {port}\n"
    )
    # the squatter: an HTTP server that answers anything on that port and logs every request it gets
    log = extra / "squatter.log"
    with log.open("w") as out:
        squatter = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=extra, stderr=out, stdout=out
        )
    try:
        wait_listening(port)
        hub = hub_factory(base_site(hub={"extra_config_dir": str(extra)}))
        session = hub.login(ann)
        r = hub.api(session, "POST", f"users/{ann}/server")
        assert r.status_code in (202, 500), r.text
        deadline = time.monotonic() + 60
        while hub.whoami_user(session, ann)["servers"]:
            assert time.monotonic() < deadline, "the start did not end"
            time.sleep(0.5)
        assert last_end(hub, session)["words"] == "Your server did not start."
        home = html.unescape(hub.get(session, "/hub/home").text)
        assert f"Port {port} on the hub's host is held by another process, not by your server." in home
        assert "http.server" not in home  # who holds it is for the hub's log only
        assert f"port {port} is held by pid {squatter.pid}" in hub.log.read_text()
        assert hub.get(session, f"/user/{ann}/api").status_code != 200  # no route to the squatter
    finally:
        squatter.kill()
        squatter.wait()
    assert "/user/" not in log.read_text(), log.read_text()  # it never saw one of ann's requests
