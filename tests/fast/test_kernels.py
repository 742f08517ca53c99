"""Which kernels get campushub's kernel class (whose debugger nothing but the kernel can reach)."""

from __future__ import annotations

import sys

from traitlets.utils.importstring import import_item

from campushub.server.debugger import PairedDebugger
from campushub.server.forkserver import KERNEL_CLASS, KERNEL_CLASS_OPTION
from campushub.server.kernels import with_campushubs_kernel

THIS = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def test_this_pythons_ipykernel_gets_campushubs_class_once():
    assert with_campushubs_kernel(THIS) == [*THIS, KERNEL_CLASS_OPTION]
    assert with_campushubs_kernel(with_campushubs_kernel(THIS)) == [*THIS, KERNEL_CLASS_OPTION]
    assert import_item(KERNEL_CLASS).class_traits()["debugger_class"].default_value is PairedDebugger


def test_another_pythons_kernel_and_another_languages_are_left_as_they_are():
    """A conda environment's Python may not have campushub: its kernel would not start with the class."""
    conda = ["/opt/conda/envs/geo/bin/python", *THIS[1:]]
    r_kernel = ["R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"]
    assert with_campushubs_kernel(conda) == conda
    assert with_campushubs_kernel(r_kernel) == r_kernel
