"""Which kernels get campushub's kernel class (whose debugger nothing but the kernel can reach), and which shared
kernels ``campushub doctor`` names as reachable by other users' code."""

from __future__ import annotations

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
