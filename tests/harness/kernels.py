"""Kernels on users' servers, driven over their websocket."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlsplit

import requests
import websocket

#: code for a kernel: its parent's command line ("campushub-kernels USER" for a kernel forked from its kernel parent)
KERNELS_PARENT = "import os; open(f'/proc/{os.getppid()}/cmdline').read().replace(chr(0), ' ').strip()"
#: code for a kernel: whether it listed only a few modules for its debugger as it started (True for a kernel forked
#: from a parent that listed its own once; the debugger adds them when it starts)
OWN_MODULES_ONLY = "len(get_ipython().kernel.debugger.kernel_modules) < 100"


class Kernel:
    """A kernel on a user's server: REST to start it, then its websocket to run code.

    ``server_url`` is the server's address (``HUB/user/NAME``); ``headers`` authenticate both
    requests (a token, or a browser's cookies with the server's XSRF token); ``verify`` is a CA
    file for HTTPS (a front door with its own CA).
    """

    def __init__(self, server_url: str, headers: dict, timeout: float = 120, verify: str | bool = True):
        self.http = requests.Session()
        self.http.headers.update(headers)
        self.http.verify = verify
        self.http.trust_env = verify is True  # the machine's REQUESTS_CA_BUNDLE would replace a CA file
        self.base = f"{server_url}/api/kernels"
        r = self.http.post(self.base, json={"name": "python3"}, timeout=60)
        assert r.status_code == 201, (r.status_code, r.text[:500])
        self.id = r.json()["id"]
        self.server_url, self.headers, self.verify, self.timeout = server_url, headers, verify, timeout
        self.user = urlsplit(server_url).path.rstrip("/").rsplit("/", 1)[-1]
        self.session = uuid.uuid4().hex
        self.debug_seq = 0
        self.debug_events: list[dict] = []
        #: what a debugger request read that is not the debugger's (a stopped cell's output, which can come before
        #: ``continue`` is answered), for :meth:`outcome`
        self.held: list[dict] = []
        self.ws = self._connect()

    def _connect(self) -> websocket.WebSocket:
        parts = urlsplit(self.server_url)
        ws_url = parts._replace(scheme="wss" if parts.scheme == "https" else "ws").geturl()
        return websocket.create_connection(
            f"{ws_url}/api/kernels/{self.id}/channels",
            timeout=self.timeout,
            sslopt={"ca_certs": self.verify} if isinstance(self.verify, str) else {},
            header=[f"{k}: {v}" for k, v in self.headers.items() if k.lower() != "x-xsrftoken"],
            origin=f"{parts.scheme}://{parts.netloc}",
        )

    def reconnect(self):
        """Close the websocket and open another to the same kernel (as JupyterLab does after a restart)."""
        self.ws.close()
        self.ws = self._connect()

    @classmethod
    def with_token(cls, hub_url: str, user: str, token: str, timeout: float = 120) -> Kernel:
        return cls(f"{hub_url}/user/{user}", {"Authorization": f"token {token}"}, timeout)

    def execute(self, code: str, timeout: float = 120) -> dict:
        """Run ``code``: {"result": text/plain or None, "error": "Name: value" or None, "died": bool}.

        ``died``: the kernel restarted or died, or the server closed the connection.
        """
        outcome = self.answer(code, timeout)
        assert outcome is not None, f"no answer from the kernel within {timeout} s"
        return outcome

    def answer(self, code: str, timeout: float) -> dict | None:
        """As :meth:`execute`, or None when no answer came within ``timeout`` (a request sent while the kernel was
        down is lost)."""
        return self.outcome(self.send(code), timeout)

    def send(self, code: str) -> str:
        """Ask the kernel to run ``code``, without waiting: the request's id, for :meth:`outcome`."""
        return self._request(
            "shell",
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": False,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
        )

    def outcome(self, msg_id: str, timeout: float) -> dict | None:
        """What came of the request ``msg_id`` (:meth:`execute`), or None when it did not end within ``timeout``."""
        outcome = {"result": None, "error": None, "died": False}
        for msg in self._messages(timeout):
            if msg is None:
                return {**outcome, "died": True}
            kind, content = msg["msg_type"], msg.get("content", {})
            if kind == "status" and content.get("execution_state") in ("restarting", "dead"):
                return {**outcome, "died": True}
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if kind == "execute_result":
                outcome["result"] = content["data"]["text/plain"]
            elif kind == "error":
                outcome["error"] = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content.get("execution_state") == "idle":
                return outcome
        return None

    def debug(self, command: str, arguments: dict | None = None, timeout: float = 30) -> dict:
        """Send the debugger a request (a ``debug_request``, as JupyterLab's debugger panel does); its answer. The
        debugger's events that came meanwhile are added to ``debug_events``."""
        self.debug_seq += 1
        request = {"type": "request", "seq": self.debug_seq, "command": command, "arguments": arguments or {}}
        msg_id = self._request("control", "debug_request", request)
        for msg in self._messages(timeout, held=False):
            assert msg is not None, f"the server closed the connection before the debugger answered {command}"
            if msg["msg_type"] == "debug_event":
                self.debug_events.append(msg["content"])
            elif msg["msg_type"] == "debug_reply" and msg["parent_header"].get("msg_id") == msg_id:
                return msg["content"]
            else:
                self.held.append(msg)
        raise AssertionError(f"the debugger did not answer {command} within {timeout} s")

    def debug_event(self, event: str, timeout: float = 30) -> dict:
        """The debugger's next ``event`` (one that came already, or the next to come)."""
        for i, content in enumerate(self.debug_events):
            if content.get("event") == event:
                return self.debug_events.pop(i)
        for msg in self._messages(timeout, held=False):
            assert msg is not None, f"the server closed the connection before the debugger's {event} event"
            if msg["msg_type"] == "debug_event":
                if msg["content"].get("event") == event:
                    return msg["content"]
                self.debug_events.append(msg["content"])
            else:
                self.held.append(msg)
        raise AssertionError(f"no {event} event from the debugger within {timeout} s")

    def _request(self, channel: str, kind: str, content: dict) -> str:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "username": self.user, "session": self.session, "msg_type": kind, "version": "5.3"}
        message = {"header": {**header, "date": ""}, "parent_header": {}, "metadata": {}, "channel": channel}
        self.ws.send(json.dumps({**message, "buffers": [], "content": content}))
        return msg_id

    def _messages(self, timeout: float, held: bool = True):
        """The kernel's messages as they come (after those :attr:`held`, unless ``held`` is False), until
        ``timeout``; None if the server closed the connection."""
        while held and self.held:
            yield self.held.pop(0)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.ws.settimeout(left)
            try:
                yield json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                return
            except websocket.WebSocketConnectionClosedException:  # the server itself is gone
                yield None
                return

    def close(self):
        self.ws.close()
        self.http.delete(f"{self.base}/{self.id}", timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_in_kernel(hub_url: str, user: str, token: str, code: str, timeout: float = 120) -> str:
    """Run ``code`` in a new kernel on ``user``'s server; return the ``text/plain`` of its result."""
    with Kernel.with_token(hub_url, user, token, timeout) as kernel:
        outcome = kernel.execute(code, timeout)
    assert outcome["error"] is None and not outcome["died"], outcome
    return outcome["result"]
