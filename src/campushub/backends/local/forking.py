"""The hub's side of the fork server (:mod:`campushub.server.forkserver`): one parent per Python environment,
started when the hub starts (or on first use), replaced when the environment's packages change, restarted when
it has died; servers are forked from it, and the user's token goes to the forked child only."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Callable

from ...server.forkserver import PARENT_ENV, fingerprint


class Unavailable(Exception):
    """The fast path cannot start this server; it starts the normal way (the message says why)."""


class Parent:
    """The hub's handle on the parent for one Python environment: started on first use, replaced
    when the environment's packages change, restarted when it has died."""

    def __init__(self, python: str):
        self.python = python
        self.path = ""
        self.process = None
        self.fingerprint = ""
        self.lock = asyncio.Lock()

    async def ensure(self, log):
        async with self.lock:
            current = fingerprint(self.python)
            if self.process and self.process.returncode is None and self.fingerprint == current:
                return
            if self.process and self.process.returncode is None:
                log.info("The packages of %s changed: replacing its fork server", self.python)
                await self.stop()
            await self.start()

    async def start(self):
        if self.path:  # the folder of a parent that died (one that ended by itself removed its own)
            shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)
        # a new private folder (0700, a random name) for its socket: short, as Unix socket paths must be
        self.path = os.path.join(tempfile.mkdtemp(prefix="campushub-"), "forkserver.sock")
        env = {k: os.environ[k] for k in PARENT_ENV if k in os.environ} | {"PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        self.process = await asyncio.create_subprocess_exec(
            self.python,
            "-m",
            "campushub.server.forkserver",
            self.path,
            stdin=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT
        while True:
            try:
                hello = await self.ask({"op": "hello"})
                self.fingerprint = hello["fingerprint"]
                return
            except OSError:
                if self.process.returncode is not None:
                    raise Unavailable(f"the fork server for {self.python} exited ({self.process.returncode})") from None
                if asyncio.get_running_loop().time() > deadline:
                    await self.stop()
                    raise Unavailable(
                        f"the fork server for {self.python} did not answer in {STARTUP_TIMEOUT} s"
                    ) from None
                await asyncio.sleep(0.05)

    async def stop(self):
        """Close the lifeline: the parent exits; the servers it forked keep running."""
        if self.process and self.process.returncode is None:
            self.process.stdin.close()
            await self.process.wait()
        shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)

    async def ask(self, message: dict) -> dict:
        reader, writer = await asyncio.open_unix_connection(self.path)
        try:
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()
            return json.loads(await reader.readline() or b"{}")
        finally:
            writer.close()

    async def fork(self, spec: dict, saved: Callable[[int], None]) -> int:
        """Fork a server: the parent forks, and the spec (the user's token) goes to the child only. The child runs
        its server once ``saved(pid)`` has returned: a hub killed before then leaves no server behind."""
        reader, writer = await asyncio.open_unix_connection(self.path)
        try:
            writer.write(b'{"op": "fork"}\n')
            await writer.drain()
            pid = json.loads(await reader.readline() or b"{}").get("pid")
            if not pid:
                raise Unavailable("the fork server did not fork")
            writer.write(json.dumps(spec).encode() + b"\n")
            await writer.drain()
            answer = json.loads(await reader.readline() or b'{"error": "the child ended before it started"}')
            if "error" in answer:
                raise RuntimeError(f"the server could not start: {answer['error']}")
            saved(pid)
            writer.write(b'{"go": true}\n')
            await writer.drain()
        finally:
            writer.close()
        return pid


STARTUP_TIMEOUT = 120  # s: a cold import on a busy machine
_PARENTS: dict[str, Parent] = {}


def warm(python: str, log):
    """Start ``python``'s parent now, in the background, when the hub is starting (its loop running):
    the first user then waits no longer than the others. Outside a running loop, do nothing."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return

    async def start():
        try:
            await _PARENTS.setdefault(python, Parent(python)).ensure(log)
            log.info("The fork server for %s is ready", python)
        except (Unavailable, OSError) as e:
            log.warning("The fork server for %s did not start (%s); servers will start the normal way", python, e)

    _WARMING.add(loop.create_task(start()))


_WARMING: set = set()  # keeps the warm-up tasks alive


async def fork(python: str, spec: dict, log, saved: Callable[[int], None]) -> int:
    """Fork a server from ``python``'s parent (starting or replacing the parent as needed); its pid, given to
    ``saved`` before the server may start (see ``Parent.fork``)."""
    parent = _PARENTS.setdefault(python, Parent(python))
    try:
        await parent.ensure(log)
        return await parent.fork(spec, saved)
    except OSError as e:
        raise Unavailable(f"the fork server for {python} cannot be reached: {e}") from None


def interpreter(script: str) -> str | None:
    """The Python a console script runs with (its ``#!`` line), if it is one."""
    try:
        with open(script, "rb") as f:
            first = f.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    python = first[2:].strip().split()[0].decode()
    return python if "python" in os.path.basename(python) and os.access(python, os.X_OK) else None
