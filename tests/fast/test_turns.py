"""Starts on the hub's machine: refused in words when the machine is short of memory."""

import re

import pytest

from campushub.hub.turns import ShortOfMemory, available_memory, check_memory


def test_a_start_is_refused_in_words_when_the_machine_is_short_of_memory():
    available = available_memory()
    assert available and available > 2**20
    check_memory(0)  # no check
    check_memory(2**20)  # a megabyte is there
    with pytest.raises(ShortOfMemory) as e:
        check_memory(available * 4)
    assert e.value.status_code == 503 and e.value.reason == "short-of-memory"
    assert re.fullmatch(
        r"The hub's machine is short of memory now \(\d+ MB available, it keeps \d+ MB for itself\), so your server"
        r" was not started\. Try again in a few minutes\.",
        e.value.message,
    )
