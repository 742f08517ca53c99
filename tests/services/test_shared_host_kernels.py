"""Kernels on a shared host (``local`` and ``slurm`` servers): every user's code can connect to the host's loopback,
where kernels listen. What another user's notebook would try: hear a kernel's output, or attach to its debugger."""

import ast
import json
import os
import pwd
import shutil
import time
from pathlib import Path

import pytest

from harness import GROUP, OWN_MODULES_ONLY, PROXY_SECRET, Kernel, base_site
from harness.browser import ARTIFACTS, CHROMIUM_FLAGS

USERS = ("cht-kern-a", "cht-kern-b")
SLOW = {"slug": "slow", "name": "Started the normal way", "backend": "local", "system_users": True, "fast_start": False}


@pytest.fixture(scope="module")
def hub(hubs, accounts):
    accounts(*USERS)
    site = base_site()
    site["profiles"] = [*site["profiles"], SLOW]
    hub = hubs.start(site, "kernels")
    yield hub
    hub.stop()


#: code for a kernel: a ZeroMQ subscriber to every message on another kernel's IOPub (ADDRESS)
SUBSCRIBE = (
    "import zmq; listener = zmq.Context.instance().socket(zmq.SUB); listener.setsockopt(zmq.SUBSCRIBE, b''); "
    "listener.connect('ADDRESS')"
)
#: code for that kernel: whether anything it heard within 3 s held SECRET
HEARD = "b'SECRET' in b''.join(b''.join(listener.recv_multipart()) for _ in iter(lambda: listener.poll(3000), 0))"
#: code for a kernel: what connecting to the Unix socket at PATH raised
CONNECT = (
    "import socket; s = socket.socket(socket.AF_UNIX)\n"
    "try:\n    s.connect('PATH'); e = None\nexcept OSError as x:\n    e = type(x).__name__\ne"
)


def iopub_address(info: dict) -> str:
    """A kernel's IOPub address, from its connection file: a TCP port, or (a forked kernel) a Unix socket."""
    if info["transport"] == "ipc":
        return f"ipc://{info['ip']}-{info['iopub_port']}"
    return f"tcp://127.0.0.1:{info['iopub_port']}"


def subscriber(info: dict):
    """A subscriber to a kernel's IOPub that holds what its connection file holds: its server key, if any."""
    import zmq

    listener = zmq.Context.instance().socket(zmq.SUB)
    if info.get("curve_publickey"):
        listener.curve_serverkey = info["curve_publickey"].encode()
        listener.curve_publickey, listener.curve_secretkey = zmq.curve_keypair()
    listener.setsockopt(zmq.SUBSCRIBE, b"")
    listener.connect(iopub_address(info))
    return listener


@pytest.mark.parametrize("profile", ["local", "slow"])
def test_another_users_code_cannot_hear_a_kernels_output(hub, profile):
    """What a kernel prints (IOPub) was sent to any subscriber: another user's notebook heard it. Only a holder of
    the kernel's connection file (its owner, here root standing in for the server) hears it now: a forked kernel's
    sockets are in a folder only its user can open (``local``), a kernel started the normal way encrypts its TCP
    channels (``slow``)."""
    import zmq

    eavesdropper, victim = USERS
    s_e, token_e = hub.with_server(eavesdropper)
    s_v, token_v = hub.with_server(victim, profile)
    with (
        Kernel.with_token(hub.url, eavesdropper, token_e, timeout=30) as listening,
        Kernel.with_token(hub.url, victim, token_v, timeout=30) as speaking,
    ):
        connection_file = speaking.execute(
            "from ipykernel.kernelapp import IPKernelApp as a; a.instance().abs_connection_file"
        )["result"]
        info = json.loads(Path(ast.literal_eval(connection_file)).read_text())
        assert info["transport"] == ("ipc" if profile == "local" else "tcp"), info
        if info["transport"] == "ipc":
            path = f"{info['ip']}-{info['iopub_port']}"
            assert listening.execute(CONNECT.replace("PATH", path))["result"] == "'PermissionError'"
        holder = subscriber(info)
        assert listening.execute(SUBSCRIBE.replace("ADDRESS", iopub_address(info)))["error"] is None
        time.sleep(1)  # both subscriptions reach the kernel
        secret = f"SECRET-{os.urandom(8).hex()}"
        assert speaking.execute(f"print({secret!r}); 1")["result"] == "1"
        heard = []
        while holder.poll(3000):
            heard += holder.recv_multipart()
        holder.close(linger=0)
        assert secret.encode() in b"".join(heard), "the connection file's holder heard nothing: the check means nothing"
        assert listening.execute(HEARD)["result"] == "False", f"{eavesdropper} heard {victim}'s kernel"
    zmq.Context.instance().term()
    hub.stop_server(s_e, eavesdropper)
    hub.stop_server(s_v, victim)


#: what JupyterLab's debugger panel sends first
INITIALIZE = {
    "clientID": "jupyterlab",
    "clientName": "JupyterLab",
    "adapterID": "python",
    "pathFormat": "path",
    "linesStartAt1": True,
    "columnsStartAt1": True,
    "supportsVariableType": True,
    "supportsVariablePaging": True,
    "supportsRunInTerminalRequest": True,
    "locale": "en",
}
#: a cell to stop in: its frame's variables are more than one read of the debugger's answers (64 KiB), and not ASCII
CELL = "def f(a):\n    many = {f'key{i}': 'é€😀' * 150 for i in range(250)}\n    b = a + ' é€😀'\n    return b\nf('x')"


#: code for a kernel: whether the files its debugger keeps a user from stepping into are a few, whether ipykernel's
#: own are among them, and whether ipykernel's module has its own ``sys`` again
SKIPPED = (
    f"({OWN_MODULES_ONLY},"
    " *(lambda i, d, s: (i.__file__ in d.kernel_modules, i.sys is s))"
    "(__import__('ipykernel.ipkernel').ipkernel, get_ipython().kernel.debugger, __import__('sys')))"
)


def turn_on(kernel: Kernel):
    """Turn the kernel's debugger on, as JupyterLab's toggle does."""
    for command, arguments in (("initialize", INITIALIZE), ("attach", {}), ("configurationDone", {})):
        answer = kernel.debug(command, arguments)
        assert answer["success"], answer


def turn_off(kernel: Kernel):
    answer = kernel.debug("disconnect", {"restart": False, "terminateDebuggee": False})
    assert answer["success"], answer


@pytest.mark.parametrize("profile", ["local", "slow"])
def test_the_debugger_stops_at_a_breakpoint_and_shows_the_frame_and_turns_off_and_on(hub, profile):
    """A user's own debugger works, in a forked kernel (``local``) and one started the normal way (``slow``)."""
    user = USERS[0]
    s, token = hub.with_server(user, profile)
    try:
        with Kernel.with_token(hub.url, user, token, timeout=30) as kernel:
            # a forked kernel lists only the modules it imported as it starts; its debugger adds its parent's
            forked = profile == "local"
            assert kernel.execute(SKIPPED)["result"] == repr((forked, not forked, True))
            turn_on(kernel)
            assert kernel.execute(SKIPPED)["result"] == repr((False, True, True))
            source = kernel.debug("dumpCell", {"code": CELL})["body"]["sourcePath"]
            breakpoints = {"breakpoints": [{"line": 3}], "source": {"path": source}, "sourceModified": False}
            assert kernel.debug("setBreakpoints", breakpoints)["body"]["breakpoints"][0]["verified"]
            running = kernel.send(CELL)
            thread = kernel.debug_event("stopped")["body"]["threadId"]
            frame = kernel.debug("stackTrace", {"threadId": thread})["body"]["stackFrames"][0]
            assert (frame["name"], frame["line"]) == ("f", 3), frame
            scope = kernel.debug("scopes", {"frameId": frame["id"]})["body"]["scopes"][0]
            shown = kernel.debug("variables", {"variablesReference": scope["variablesReference"]})["body"]
            values = {v["name"]: v for v in shown["variables"]}
            assert values["a"]["value"] == "'x'", values
            many = kernel.debug("variables", {"variablesReference": values["many"]["variablesReference"]})["body"]
            keys = [v["value"] for v in many["variables"] if v["name"].startswith("'key")]
            assert len(keys) == 250 and all("é€😀" in value for value in keys), many["variables"][:3]
            uid = kernel.debug("evaluate", {"expression": "__import__('os').getuid()", "frameId": frame["id"]})
            assert uid["body"]["result"] == str(pwd.getpwnam(user).pw_uid), uid
            assert kernel.debug("continue", {"threadId": thread})["success"]
            ended = kernel.outcome(running, timeout=30)
            assert ended["result"] == repr("x é€😀"), ended
            turn_off(kernel)
            turn_on(kernel)
            assert kernel.debug("debugInfo")["body"]["isStarted"]
            turn_off(kernel)
            assert kernel.execute("6 * 7")["result"] == "42"
    finally:
        hub.stop_server(s, user)


#: code for a kernel: its process id and the folder its temporary files go to
TEMPORARY = "import os, tempfile; (os.getpid(), tempfile.gettempdir())"
#: code for a kernel: make the folder ipykernel's debugger would use for the kernel with process id PID in /tmp, as
#: a folder anyone can write to, and a link in the kernel's temporary folder to it (where the link can be made)
LAY_OUT = """
import os
laid = '/tmp/ipykernel_PID'
os.mkdir(laid); os.chmod(laid, 0o777)
try:
    os.symlink(laid, os.path.join('TMP', 'ipykernel_PID')); linked = True
except OSError:
    linked = False
linked
"""


@pytest.mark.parametrize("profile", ["local", "slow"])
def test_another_users_code_cannot_lay_out_a_kernels_temporary_files(hub, profile):
    """ipykernel's debugger writes each cell it debugs to ``/tmp/ipykernel_PID``, a name anyone can work out from the
    kernel's process id: another user's code made that folder first, writable by all, and read every cell the user
    debugged (or left links there, named as the next cells would be). Now a server, its kernels and its terminals
    have a temporary folder (``TMPDIR``) that only their user can open, removed when the server ends, and the
    debugger uses no folder that is not its user's alone."""
    attacker, victim = USERS
    s_a, token_a = hub.with_server(attacker)
    s_v, token_v = hub.with_server(victim, profile)
    uid = pwd.getpwnam(victim).pw_uid
    laid, running = "", [s_a, s_v]
    try:
        with (
            Kernel.with_token(hub.url, attacker, token_a, timeout=30) as attacking,
            Kernel.with_token(hub.url, victim, token_v, timeout=30) as debugged,
        ):
            pid, tmp = ast.literal_eval(debugged.execute(TEMPORARY)["result"])
            laid = f"/tmp/ipykernel_{pid}"
            tried = attacking.execute(LAY_OUT.replace("PID", str(pid)).replace("TMP", tmp))
            assert tried["result"] == "False", f"{attacker} made a link in {victim}'s temporary folder {tmp}: {tried}"
            turn_on(debugged)
            source = debugged.debug("dumpCell", {"code": CELL})["body"]["sourcePath"]
            read = attacking.execute(f"os.listdir({laid!r})")
            assert read["result"] == "[]", f"{attacker} read {victim}'s debugged cell in {laid}: {source}, {read}"
            turn_off(debugged)
            assert tmp != "/tmp" and Path(source).is_relative_to(tmp), (tmp, source)
            for folder in (tmp, os.path.dirname(source)):
                st = os.lstat(folder)
                assert (st.st_uid, oct(st.st_mode)) == (uid, "0o40700"), (folder, st)
            assert "PermissionError" in str(attacking.execute(f"os.listdir({tmp!r})")["error"])
        hub.stop_server(running.pop(), victim)
        deadline = time.monotonic() + 10  # the server's kernel parent removes it as it ends, after the server
        while os.path.exists(tmp):
            assert time.monotonic() < deadline, f"{victim}'s temporary folder {tmp} was left after the server ended"
            time.sleep(0.2)
    finally:
        if laid:
            shutil.rmtree(laid, ignore_errors=True)
        for session, user in zip(running, USERS, strict=False):
            hub.stop_server(session, user)


#: code for a kernel: the TCP ports that listen on this host now
LISTENING = """
def listening():
    ports = set()
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == '0A':
                ports.add(int(fields[1].rsplit(':', 1)[1], 16))
    return ports
"""
#: code for a kernel: what each of some ports answers to a debugger client's initialize, attach and evaluate of the
#: uid its code runs as: the answers to evaluate that succeeded
ATTACK = r"""
import json, socket

def attach_and_evaluate(ports):
    evaluated = []
    for port in ports:
        data = b''
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=2) as s:
                requests = [('initialize', {'adapterID': 'python'}), ('attach', {'justMyCode': False}),
                            ('evaluate', {'expression': "__import__('os').getuid()", 'context': 'repl'})]
                for seq, (command, arguments) in enumerate(requests, 1):
                    body = json.dumps({'type': 'request', 'seq': seq, 'command': command, 'arguments': arguments})
                    s.sendall(b'Content-Length: %d\r\n\r\n' % len(body) + body.encode())
                while chunk := s.recv(65536):
                    data += chunk
        except OSError:
            pass
        while b'\r\n\r\n' in data:
            head, _, data = data.partition(b'\r\n\r\n')
            try:
                size = int(head.rsplit(b':', 1)[1])
                message = json.loads(data[:size])
            except ValueError:
                break
            data = data[size:]
            if message.get('command') == 'evaluate' and message.get('success'):
                evaluated.append((port, message['body'].get('result')))
    return evaluated
"""


@pytest.mark.parametrize("profile", ["local", "slow"])
def test_another_users_code_cannot_reach_a_kernels_debugger(hub, profile):
    """ipykernel's debugger listened on a loopback port for any debugger client, from the moment its user turned it
    on, and after they turned it off: another user's notebook attached and ran code as them. Now nothing listens
    for it, and the user's debugger still answers after the attempt."""
    attacker, victim = USERS
    s_a, token_a = hub.with_server(attacker)
    s_v, token_v = hub.with_server(victim, profile)
    try:
        with (
            Kernel.with_token(hub.url, attacker, token_a, timeout=30) as attacking,
            Kernel.with_token(hub.url, victim, token_v, timeout=30) as debugged,
        ):
            assert attacking.execute(LISTENING + ATTACK + "before = listening()")["error"] is None
            turn_on(debugged)
            tried = attacking.execute("attach_and_evaluate(sorted(listening() - before))")
            assert tried["result"] == "[]", f"{attacker} ran code in {victim}'s kernel while debugged: {tried}"
            assert debugged.debug("threads")["success"]
            turn_off(debugged)
            tried = attacking.execute("attach_and_evaluate(sorted(listening() - before))")
            assert tried["result"] == "[]", f"{attacker} ran code in {victim}'s kernel after its debugger: {tried}"
            turn_on(debugged)
            assert debugged.debug("threads")["success"]
            turn_off(debugged)
    finally:
        hub.stop_server(s_a, attacker)
        hub.stop_server(s_v, victim)


def test_jupyterlabs_debugger_panel_stops_at_a_breakpoint_and_shows_the_variables(hub):
    """JupyterLab's own debugger, in Chromium, with campushub's kernel class: the toggle, a breakpoint set in the
    gutter, the stop with the frame's variables and call stack, continue."""
    from playwright.sync_api import expect, sync_playwright

    user = USERS[0]
    s, _token = hub.with_server(user)
    headers = {hub.user_header: user, hub.groups_header: GROUP, hub.secret_header: PROXY_SECRET}
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_context(extra_http_headers=headers, viewport={"width": 1400, "height": 900}).new_page()
        try:
            page.goto(f"{hub.url}/user/{user}/lab")
            page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click(timeout=60_000)
            # a web component: disabled (aria-disabled) until the kernel has said it supports debugging
            toggle = page.locator(".jp-DebuggerBugButton").first
            page.locator('.jp-DebuggerBugButton[aria-disabled="false"]').first.click(timeout=60_000)
            expect(toggle).to_have_attribute("aria-pressed", "true", timeout=30_000)
            cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
            cell.click()
            page.keyboard.type("def f(a):\nb = a * 2\nreturn b\n")
            page.keyboard.press("Backspace")
            page.keyboard.type("f(21)")
            # the breakpoint gutter follows the editor's lines: all four are drawn before one of its marks is clicked
            expect(page.locator(".jp-Notebook .jp-Cell .cm-content .cm-line")).to_have_count(4, timeout=30_000)
            page.locator(".jp-Notebook .jp-Cell .cm-gutter.cm-breakpoint-gutter .cm-gutterElement").nth(2).click()
            page.keyboard.press("Shift+Enter")
            variables = page.locator(".jp-DebuggerVariables")
            expect(variables).to_contain_text("21", timeout=60_000)
            expect(page.locator(".jp-DebuggerCallstack")).to_contain_text("f", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "debugger-stopped.png"))
            page.keyboard.press("F9")
            expect(page.locator(".jp-OutputArea-output").first).to_contain_text("42", timeout=30_000)
        finally:
            page.screenshot(path=str(ARTIFACTS / "debugger-last.png"))
            browser.close()
            hub.stop_server(s, user)
