"""A parent's heap gaps, filled before it forks: a child's new objects land on pages of its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from campushub.server import heap

#: in a fresh Python: live objects with a freed one between each two, then new objects made after ``fill`` (or not);
#: prints how many pages the new objects share with the live ones, for Python's pools and the C library's heap
NEW_OBJECTS_ON_OLD_PAGES = """
import ctypes, sys
from campushub.server import heap

live = [bytes(200) for _ in range(8000)]  # 240-byte blocks of Python's pools
del live[::2]
libc = heap._libc()
libc.free.argtypes = [ctypes.c_void_p]
chunks = [libc.malloc(600) for _ in range(4000)]  # chunks of the C library's heap
for chunk in chunks[::2]:
    libc.free(chunk)
kept = chunks[1::2]
if sys.argv[1] == "fill":
    heap.fill_gaps()
new = [bytes(200) for _ in range(4000)]
new_chunks = [libc.malloc(600) for _ in range(2000)]
pages = lambda addresses: {a // 4096 for a in addresses} | {(a + 599) // 4096 for a in addresses}
print(len(pages(map(id, new)) & pages(map(id, live))), len(pages(new_chunks) & pages(kept)))
"""


def new_objects_on_old_pages(fill: bool) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", NEW_OBJECTS_ON_OLD_PAGES, "fill" if fill else "no"],
        capture_output=True,
        text=True,
        check=True,
    )
    pools, c_heap = done.stdout.split()
    return int(pools), int(c_heap)


def test_once_the_gaps_are_filled_new_objects_go_to_pages_of_their_own():
    assert new_objects_on_old_pages(fill=True) == (0, 0)
    pools, c_heap = new_objects_on_old_pages(fill=False)
    assert pools > 100 and c_heap > 100  # without: the new objects fill the gaps among the live ones


def test_reading_pythons_pools_prints_nothing_and_leaves_stderr_where_it_was(capfd):
    gaps = heap.pool_gaps()
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"
    assert sorted(gaps) == list(range(16, 513, 16)) and all(free >= 0 for free in gaps.values())


def test_a_python_or_c_library_that_cannot_say_leaves_its_gaps(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delattr(sys, "_debugmallocstats")
    monkeypatch.setattr(heap, "_libc", lambda: None)
    assert heap.pool_gaps() == {} and heap.heap_gap_bytes() == 0
    heap.fill_gaps()  # fills nothing, and says nothing


def test_a_system_that_refuses_a_memory_file_leaves_the_pools_without_an_error(monkeypatch: pytest.MonkeyPatch):
    def refused(name):
        raise PermissionError(1, "Operation not permitted")  # as a container's seccomp profile may answer

    monkeypatch.setattr(os, "memfd_create", refused)
    assert heap.pool_gaps() == {}


def test_a_kernel_parents_preload_leaves_no_gaps_in_the_c_librarys_heap():
    code = (
        "from campushub.server import forkserver, heap; "
        "forkserver._preload(forkserver.KERNEL_PRELOAD); print(heap.heap_gap_bytes())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(done.stdout) < 4096


#: free chunks in another thread's arena, which the filling thread's own allocations never reach
ANOTHER_THREADS_GAPS = """
import ctypes, threading
from campushub.server import heap

libc = heap._libc()
libc.free.argtypes = [ctypes.c_void_p]
def another_thread():
    chunks = [libc.malloc(600) for _ in range(4000)]
    for chunk in chunks[::2]:
        libc.free(chunk)
thread = threading.Thread(target=another_thread)
thread.start()
thread.join()
gaps, used = heap.heap_gap_bytes(), libc.mallinfo2().uordblks
heap.fill_gaps()
print(gaps, libc.mallinfo2().uordblks - used)
"""


def test_gaps_out_of_reach_in_another_threads_arena_are_left_after_one_try():
    done = subprocess.run([sys.executable, "-c", ANOTHER_THREADS_GAPS], capture_output=True, text=True, check=True)
    gaps, grown = map(int, done.stdout.split())
    assert gaps > 2**20  # counted as free, though this thread cannot fill them: a fill to 4 MB would follow
    assert grown < gaps + 2**20, (gaps, grown)
