"""Fill the free gaps in a parent's heap before it forks, so that its children do not copy the pages around them.

A parent that imported a server's or a kernel's modules has freed memory along the way: gaps among its live
objects, in Python's own small-object pools and in the C library's heap. Each child then places its first new
objects in those gaps (both allocators reuse free space before they ask for more), and each such write copies a
page of the parent's live objects into the child: memory every child pays for again. Filled here, once, with
objects that are never freed, the gaps are gone from the pages the children share; a child's new objects go to
pages of its own.

Both allocators are asked what they hold free: Python through ``sys._debugmallocstats`` (which prints it), the
C library through ``mallinfo2``. Where either cannot say (another Python, another C library, ``PYTHONMALLOC``), its
gaps stay as they are.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys

#: one row of ``sys._debugmallocstats``'s table of pools: class, block size, pools, blocks in use, blocks free
_POOL_ROW = re.compile(rb"^\s*\d+\s+(\d+)\s+\d+\s+\d+\s+(\d+)\s*$", re.MULTILINE)
#: the bytes a ``bytes`` object takes beside its content, and the smallest block of Python's allocator one fits
_BYTES_HEADER, _SMALLEST_BYTES_BLOCK = sys.getsizeof(b""), 48
#: the C library's smallest request and the chunk it takes, and the largest request its per-thread cache keeps (7
#: chunks of each size, every 16 bytes)
_C_SMALLEST, _C_SMALLEST_CHUNK, _C_CACHED, _C_CACHE_DEPTH = 24, 32, 1032, 7
#: at most this much of the C library's free space is filled: it gives the smallest free chunks first, and a large
#: free chunk costs a child nothing it would not use anyway (its pages hold nothing of the parent's)
_C_MOST = 4 * 2**20

#: what fills the gaps: kept for the life of the process, never read
_FILLING: list = []


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2``: ``fordblks`` is the free space, ``keepcost`` the free top of the heap."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def fill_gaps():
    """Fill the free blocks of Python's small-object pools, then the C library's free chunks (call it last
    before forking, after any collection: a collection frees objects and opens new gaps)."""
    for _ in range(2):  # the first pass's own reading frees a few blocks; the second fills those
        _FILLING.append(
            [
                bytes(size - _BYTES_HEADER)
                for size, free in pool_gaps().items()
                if size >= _SMALLEST_BYTES_BLOCK
                for _ in range(free)
            ]
        )
    _fill_c_heap()


def pool_gaps() -> dict[int, int]:
    """Free blocks in Python's partly used pools, by block size (empty if this Python, or this system, cannot say:
    filling is a saving, never a reason for a parent not to start)."""
    report = getattr(sys, "_debugmallocstats", None)
    if report is None:
        return {}
    try:
        text = _printed_to_stderr(report)
    except OSError:
        return {}
    return {int(size): int(free) for size, free in _POOL_ROW.findall(text)}


def _printed_to_stderr(report) -> bytes:
    """What ``report()`` prints to the C library's stderr (file descriptor 2), which is then as it was."""
    with os.fdopen(os.memfd_create("campushub-mallocstats"), "w+b") as captured:
        saved = os.dup(2)
        try:
            if sys.stderr:
                sys.stderr.flush()
            os.dup2(captured.fileno(), 2)
            try:
                report()
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
        captured.seek(0)
        return captured.read()


def heap_gap_bytes() -> int:
    """Bytes in the C library's free chunks below the top of its heap (0 if it cannot say)."""
    libc = _libc()
    return 0 if libc is None else _free_below_top(libc)


def _fill_c_heap():
    libc = _libc()
    if libc is None:
        return
    malloc = libc.malloc
    for size in range(_C_SMALLEST, _C_CACHED + 1, 16):  # the per-thread cache first: it is not counted as free
        for _ in range(_C_CACHE_DEPTH):
            malloc(size)
    filled, free = 0, _free_below_top(libc)
    while free >= 4096 and filled < _C_MOST:
        chunks = min(free, _C_MOST - filled) // _C_SMALLEST_CHUNK
        for _ in range(chunks):  # the smallest chunk: a larger free chunk is split until it is used up
            malloc(_C_SMALLEST)
        filled += chunks * _C_SMALLEST_CHUNK
        before, free = free, _free_below_top(libc)
        if before - free < chunks * _C_SMALLEST_CHUNK // 2:
            return  # what is left free is out of this thread's reach: another thread's arena, counted with it


def _free_below_top(libc) -> int:
    info = libc.mallinfo2()
    return info.fordblks - info.keepcost


def _libc():
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2  # glibc 2.33 and later
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        return libc
    return None
