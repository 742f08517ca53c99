"""Starts take turns on the hub's machine, and a start returns once its server listens (or has stopped)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from jupyterhub.spawner import SpawnException


class Admission:
    """At most ``slots`` servers start at once on this machine, first come, first served.

    A burst of starts then finishes half its users in half the time, instead of all of them
    at the end; whoever waits sees their place in line on the spawn page.
    """

    def __init__(self, slots: int):
        self.slots = slots
        self.starting = 0
        self.waiting: list[tuple[object, asyncio.Future]] = []

    async def enter(self, who):
        turn = asyncio.get_running_loop().create_future()
        self.waiting.append((who, turn))
        self._next()
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.leave()  # our turn came as we were cancelled: pass it on
            self.waiting = [(w, t) for w, t in self.waiting if t is not turn]
            raise

    def leave(self):
        self.starting -= 1
        self._next()

    def _next(self):
        while self.starting < self.slots and self.waiting:
            _who, turn = self.waiting.pop(0)
            if not turn.done():
                self.starting += 1
                turn.set_result(None)

    def place(self, who) -> int | None:
        """1 for the next to start, None for someone not waiting."""
        return next((i + 1 for i, (w, _t) in enumerate(self.waiting) if w is who), None)

    async def progress(self, who):
        """Events for the spawn page while ``who`` waits: its place in line."""
        while (place := self.place(who)) is not None:
            ahead = "you are next" if place == 1 else f"{place - 1} ahead of you"
            yield {
                "progress": 5,
                "message": f"Waiting for a turn: {self.starting} servers are starting on this machine, {ahead}",
            }
            await asyncio.sleep(0.5)


ADMISSION = Admission(os.cpu_count() or 2)


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo, in bytes (None where there is none)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class ShortOfMemory(SpawnException):
    """The hub's machine has less memory available than it keeps for itself: no server starts now."""

    def __init__(self, available: int, reserve: int):
        super().__init__(
            f"The hub's machine is short of memory now ({available // 2**20} MB available, it keeps"
            f" {reserve // 2**20} MB for itself), so your server was not started. Try again in a few minutes.",
            reason="short-of-memory",  # also campushub_server_start_failures_total's label
            status_code=503,
        )


def check_memory(reserve: int):
    """Raise :class:`ShortOfMemory` when less than ``reserve`` bytes are available (0: no check)."""
    if reserve and (found := available_memory()) is not None and found < reserve:
        raise ShortOfMemory(found, reserve)


class ServerStopped(SpawnException):
    """The server stopped while it started: fail now, rather than after the hub's http_timeout."""

    def __init__(self, status):
        super().__init__(
            f"Your server stopped while it started ({status}); your home page shows its last words.",
            reason="stopped-while-starting",  # also campushub_server_start_failures_total's label
            status_code=500,
        )


async def listening(ip: str, port: int, timeout: float, spawner) -> bool:
    """Return once ``ip:port`` accepts connections (so that the hub's first check succeeds: True), or
    ``timeout`` has passed (False: the hub then judges, as it always did); raise :class:`ServerStopped`
    if the server stops first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_poll = loop.time() + 1
    while loop.time() < deadline:
        try:
            _reader, writer = await asyncio.open_connection(ip or "127.0.0.1", port)
            writer.close()
            return True
        except OSError:
            if loop.time() > next_poll:  # a poll can be a command (squeue, the engine): once a second
                status = await spawner.poll()
                if status is not None:
                    raise ServerStopped(status) from None
                next_poll = loop.time() + 1
            await asyncio.sleep(0.05)
    return False
