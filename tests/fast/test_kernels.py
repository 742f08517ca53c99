"""Which kernels get campushub's kernel class (whose debugger nothing but the kernel can reach), and which shared
kernels ``campushub doctor`` names as reachable by other users' code."""

from __future__ import annotations

import asyncio
import json
import sys

import yaml
from traitlets.utils.importstring import import_item

from campushub.ops import doctor
from campushub.server.debugger import PairedDebugger
from campushub.server.forkserver import KERNEL_CLASS, KERNEL_CLASS_OPTION
from campushub.server.kernels import with_campushubs_kernel
from campushub.sitefile.read import load_site
from harness import EMBEDDED, base_site

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


def kernelspec(folder, name: str, argv: list[str], **metadata):
    (folder / name).mkdir(parents=True)
    spec = {"argv": argv, "display_name": name.title(), "language": "python", "metadata": metadata}
    (folder / name / "kernel.json").write_text(json.dumps(spec))


def loaded(tmp_path, site: dict):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site))
    return load_site(path)


def test_doctor_names_the_shared_kernels_other_users_code_can_reach(tmp_path):
    """On a shared host: a kernel without CurveZMQ can be read, another Python's ipykernel keeps its debugger."""
    kernels = tmp_path / "kernels"
    curve = {"supported_encryption": ["curve"]}
    kernelspec(kernels, "ours", ["python", *THIS[1:]], debugger=True, **curve)
    kernelspec(kernels, "ours-by-path", THIS, debugger=True, **curve)
    # this Python, but not ipykernel_launcher: the servers do not give it campushub's class
    kernelspec(
        kernels,
        "ours-not-launched",
        [sys.executable, "-m", "ipykernel", "-f", "{connection_file}"],
        debugger=True,
        **curve,
    )
    kernelspec(kernels, "geo", ["/opt/conda/envs/geo/bin/python", *THIS[1:]], debugger=True)
    kernelspec(kernels, "geo-new", ["/opt/conda/envs/geo-new/bin/python", *THIS[1:]], debugger=True, **curve)
    kernelspec(kernels, "old", ["/opt/old/bin/python", *THIS[1:]], **curve)
    kernelspec(kernels, "r", ["R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"])
    (kernels / "broken").mkdir()
    (kernels / "broken" / "kernel.json").write_text("{")
    shared = loaded(tmp_path, base_site())
    findings = doctor.kernel_findings(shared, [str(kernels)])
    said = {line.split(" ", 2)[1]: line for line in findings}
    assert set(said) == {"geo", "geo-new", "ours-not-launched", "r", f"{kernels / 'broken'}/kernel.json"}, findings
    geo, geo_new, r = said["geo"], said["geo-new"], said["r"]
    assert "not encrypted" not in said["ours-not-launched"] and "debugger" in said["ours-not-launched"]
    assert "not encrypted" in geo and "debugger" in geo, geo
    assert "not encrypted" not in geo_new and "debugger" in geo_new, geo_new
    assert "not encrypted" in r and "debugger" not in r, r
    assert doctor.kernel_findings(loaded(tmp_path, EMBEDDED), [str(kernels)]) == []  # one account: nothing to reach


def connection_after_pre_launch(tmp_path, monkeypatch, argv: list[str]) -> dict:
    """What a kernel's connection file holds once campushub's provisioner has prepared its start in a server with
    a kernel parent (the parent is not asked: nothing is launched)."""
    from jupyter_client.manager import AsyncKernelManager

    from campushub.server.forkserver import KERNEL_PARENT, KERNEL_SOCKETS
    from campushub.server.kernels import ForkedKernelProvisioner

    monkeypatch.setenv(KERNEL_PARENT, "99")
    monkeypatch.setenv(KERNEL_SOCKETS, str(tmp_path / "sockets"))
    kernels = tmp_path / "kernels"
    kernelspec(kernels, "k", argv, supported_encryption=["curve"])
    km = AsyncKernelManager(
        kernel_name="k",
        kernel_id="../../../../tmp/chosen-by-a-client",  # POST /api/kernels takes a client's kernel_id
        connection_file=str(tmp_path / "kernel.json"),
        transport_encryption="auto",
    )
    km.kernel_spec_manager.kernel_dirs = [str(kernels)]
    km.provisioner = ForkedKernelProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
    asyncio.run(km.provisioner.pre_launch())
    return json.loads((tmp_path / "kernel.json").read_text())


def test_a_forked_kernels_channels_are_unix_sockets_in_its_kernel_parents_folder(tmp_path, monkeypatch):
    """Another user's code could connect to a kernel's TCP ports on the loopback; not to sockets in that folder,
    whatever kernel id a client asked for."""
    import os
    import re

    info = connection_after_pre_launch(tmp_path, monkeypatch, ["python", *THIS[1:]])
    assert info["transport"] == "ipc" and not info.get("curve_publickey"), info
    folder, name = os.path.split(info["ip"])
    assert folder == str(tmp_path / "sockets") and re.fullmatch("[0-9a-f]{16}", name), info  # not the client's id
    assert all(0 < info[f"{name}_port"] < 10 for name in ("shell", "iopub", "stdin", "control", "hb")), info


def test_a_kernel_started_the_normal_way_keeps_encrypted_tcp(tmp_path, monkeypatch):
    info = connection_after_pre_launch(tmp_path, monkeypatch, ["/opt/conda/envs/geo/bin/python", *THIS[1:]])
    assert info["transport"] == "tcp" and info["curve_publickey"], info


def test_the_sockets_folder_is_the_users_alone_and_in_tmpdir_unless_a_socket_path_would_be_too_long(
    tmp_path, monkeypatch
):
    """A Unix socket's path has at most 107 bytes; a Slurm job's TMPDIR can be long."""
    import os
    import shutil
    import stat
    import tempfile

    from campushub.server.forkserver import sockets_folder

    short = tempfile.mkdtemp(prefix="k")
    long = tmp_path / ("x" * 80)
    long.mkdir()
    try:
        for tmpdir, parent in ((short, short), (long, "/tmp")):
            monkeypatch.setenv("TMPDIR", str(tmpdir))
            monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
            folder = sockets_folder()
            mode = os.stat(folder)
            shutil.rmtree(folder)
            assert os.path.dirname(folder) == parent, folder
            assert stat.S_IMODE(mode.st_mode) == 0o700 and mode.st_uid == os.getuid(), mode
    finally:
        shutil.rmtree(short)


def test_a_server_whose_kernels_get_no_sockets_folder_still_starts_and_starts_them_the_normal_way():
    """No writable TMPDIR or /tmp (a container's read-only file system): the folder is a saving, never a reason for
    the server not to start."""
    import subprocess

    code = (
        "import os, tempfile; from campushub.server import forkserver as f\n"
        "def refuse(*a, **k): raise PermissionError(13, 'Permission denied', '/tmp')\n"
        "tempfile.mkdtemp = refuse\n"
        "fd = f.start_kernel_parent()\n"
        "print(fd > 2, f.KERNEL_SOCKETS in os.environ)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "False"], out
    assert "kernels start the normal way: no folder for their sockets" in out.stderr, out
