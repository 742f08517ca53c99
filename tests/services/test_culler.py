"""The idle culler: a hub-managed service with its own role, culling real servers."""

import threading
import time

import requests

from campushub.hub.configurer import CULLER_ROLE, CULLER_SERVICE
from harness import GROUP, base_site

TIMEOUT, EVERY, MARGIN = 10, 5, 15
SITE = base_site(culler={"enabled": True, "timeout": TIMEOUT, "every": EVERY})


def test_idle_server_is_culled_and_active_one_kept(hub_factory, accounts):
    hub = hub_factory(SITE)
    bob, alice = accounts("cht-bob", "cht-alice")
    admin = hub.login("root-admin", f"{GROUP};crc-admins")
    service = hub.api(admin, "GET", f"services/{CULLER_SERVICE}").json()
    assert service["roles"] == [CULLER_ROLE]

    bob_session = hub.login(bob)
    hub.start_server(bob_session, bob)
    bob_ready = time.monotonic()
    token = hub.token(bob_session, bob)
    stop = threading.Event()

    def keep_busy():  # a user working in JupyterLab: requests through the proxy every 2 s
        while not stop.is_set():
            requests.get(f"{hub.url}/user/{bob}/api/contents", headers={"Authorization": f"token {token}"}, timeout=10)
            stop.wait(2)

    busy = threading.Thread(target=keep_busy, daemon=True)
    busy.start()
    try:
        alice_session = hub.login(alice)
        hub.start_server(alice_session, alice)
        alice_ready = time.monotonic()
        while hub.whoami_user(alice_session, alice)["servers"]:
            assert time.monotonic() - alice_ready < TIMEOUT + EVERY + MARGIN, "idle server was not culled"
            time.sleep(1)
        culled_after = time.monotonic() - alice_ready
        assert culled_after > TIMEOUT - 1, f"culled after {culled_after:.0f} s, before its timeout"
        # stopped by the culler (with its own token), not gone for another reason
        assert f"DELETE /hub/api/users/{alice}/server ({CULLER_SERVICE}@" in hub.log.read_text()
        # bob has now been running longer than the timeout, and must still be there
        while time.monotonic() - bob_ready < TIMEOUT + EVERY + MARGIN:
            time.sleep(1)
        assert hub.whoami_user(bob_session, bob)["servers"][""]["ready"]
    finally:
        stop.set()
        busy.join()
    hub.stop_server(bob_session, bob)
