"""The fork server's fingerprint of an environment's packages, which decides when the hub replaces its parent."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from campushub.server.forkserver import fingerprint


def test_the_fingerprint_changes_with_every_install_upgrade_and_removal(tmp_path):
    python = tmp_path / "bin" / "python3"
    site_packages = tmp_path / "lib" / "python3.11" / "site-packages"
    site_packages.mkdir(parents=True)
    python.parent.mkdir()
    python.touch()

    def settled(when: int) -> str:
        """The fingerprint once the folder's last change is ``when`` seconds ago (asked twice: read, then kept)."""
        os.utime(site_packages, ns=(time.time_ns() - when * 10**9,) * 2)
        first = fingerprint(str(python))
        assert fingerprint(str(python)) == first
        return first

    (site_packages / "numpy-2.0.0.dist-info").mkdir()
    before = settled(3600)
    (site_packages / "pandas-2.2.0.dist-info").mkdir()
    assert fingerprint(str(python)) != before  # just changed: read again
    installed = settled(3500)
    assert installed != before
    (site_packages / "numpy-2.0.0.dist-info").rename(site_packages / "numpy-2.1.0.dist-info")
    upgraded = settled(3400)
    assert upgraded not in (before, installed)
    (site_packages / "pandas-2.2.0.dist-info").rmdir()
    assert settled(3300) not in (before, installed, upgraded)


def test_a_kernel_parents_preload_does_not_print_debugpys_frozen_modules_warning():
    env = {k: v for k, v in os.environ.items() if k != "PYDEVD_DISABLE_FILE_VALIDATION"}
    code = "from campushub.server import forkserver; forkserver._preload(forkserver.KERNEL_PRELOAD); import debugpy"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "Debugger warning" not in done.stderr, done.stderr
    bare = subprocess.run([sys.executable, "-c", "import ipykernel.debugger"], capture_output=True, text=True, env=env)
    assert "Debugger warning" in bare.stderr  # what it prints without: the check above can fail


def test_the_parent_looks_up_kernel_provisioners_once_and_a_users_own_is_still_found(tmp_path):
    theirs = tmp_path / "theirs-1.0.dist-info"  # a provisioner in a user's own site-packages, which the parent lacks
    theirs.mkdir()
    (theirs / "METADATA").write_text("Metadata-Version: 2.1\nName: theirs\nVersion: 1.0\n")
    (theirs / "entry_points.txt").write_text(
        "[jupyter_client.kernel_provisioners]\ntheirs = jupyter_client.provisioning:LocalProvisioner\n"
    )
    code = f"""
import sys
from campushub.server import forkserver
from jupyter_client.provisioning import factory
forkserver._look_up_provisioners()
read = factory.entry_points
def again(**_):
    raise AssertionError("a child read the entry points again")
factory.entry_points = again
print(sorted(factory.KernelProvisionerFactory.instance().provisioners))
factory.entry_points = read
sys.path.append({str(tmp_path)!r})  # as a forked server adds the user's site-packages
print(factory.KernelProvisionerFactory.instance()._check_availability("theirs"))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["['campushub-forked', 'local-provisioner']", "True"], done.stdout


#: code that puts a lazily loaded module in ``sys.modules`` (``lazy``): reading its ``__file__`` would load it
LAZY_WAVE = """
spec = importlib.util.find_spec("wave")
spec.loader = importlib.util.LazyLoader(spec.loader)
lazy = importlib.util.module_from_spec(spec)
sys.modules["wave"] = lazy
spec.loader.exec_module(lazy)
"""


def test_the_parent_packs_module_names_and_files_without_changing_or_loading_a_module():
    """Each kernel reads every module's name and ``__file__``: after the parent's packing they are equal strings on
    new objects, in the same order, for the same modules; a lazily loaded module stays unloaded, and an entry that
    is not a module stays as it was."""
    code = (
        """
import importlib.util, sys
from campushub.server import forkserver
"""
        + LAZY_WAVE
        + """
sys.modules["not_installed_here"] = None


def file_of(module):
    try:
        return object.__getattribute__(module, "__dict__").get("__file__")
    except AttributeError:
        return None


before = [(name, module, file_of(module)) for name, module in sys.modules.items()]
forkserver._pack_module_names()
after = [(name, module, file_of(module)) for name, module in sys.modules.items()]
assert [(n, m, f) for n, m, f in before] == [(n, m, f) for n, m, f in after]
assert all(a[1] is b[1] for a, b in zip(before, after))
assert all(a[0] is not b[0] for a, b in zip(before, after) if len(a[0]) > 1)
files = [(a[2], b[2]) for a, b in zip(before, after) if isinstance(a[2], str)]
assert len(files) > 50 and all(old is not new for old, new in files)
assert type(lazy).__name__ == "_LazyModule" and sys.modules["not_installed_here"] is None
print("packed", len(after), "modules")
"""
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("packed "), done.stderr


def test_a_forked_kernel_lists_its_own_modules_and_its_debugger_gets_the_parents_too():
    """What ipykernel's kernel lists of ``sys.modules`` as it starts, through the ``sys`` a forked kernel is made
    with: only the modules imported since the parent listed its own; with the parent's list, all of them. The
    parent's listing leaves a lazily loaded module unloaded."""
    code = (
        """
import importlib.util, sys
from ipykernel import ipkernel
from campushub.server import debugger
"""
        + LAZY_WAVE
        + """
debugger.list_parents_modules()
assert type(lazy).__name__ == "_LazyModule"  # not loaded by the listing
del sys.modules["wave"]  # as a kernel parent forgets the deferred modules
import wave  # imported after the fork
names, files = debugger._parents_modules
def as_ipykernel_lists():
    return [m.__file__ for m in ipkernel.sys.modules.copy().values() if hasattr(m, "__file__") and m.__file__]


everything = as_ipykernel_lists()
ipkernel.sys = debugger._SysForAForkedKernel(names)
own = as_ipykernel_lists()
assert ipkernel.sys.modules["sys"] is sys and ipkernel.sys.platform == sys.platform
ipkernel.sys = sys
assert own == [wave.__file__], own
assert sorted(own + list(files)) == sorted(everything)
assert len(files) > 500 and wave.__file__ not in files
print("ok")
"""
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
