"""What a cold single-user server spends importing, with and without each part of campushub's diet.

A benchmark, not a test: for each variant it runs a fresh Python that imports what
``jupyterhub-singleuser`` imports (the single-user extension, JupyterLab, its server
extensions), --repeat times, and prints the median wall time and CPU time. Variants:

- ``baseline``: as installed;
- ``no rfc3987-syntax``: the import that jsonschema's format checks make, left out;
- ``no node``: JupyterLab's yarn configuration (``node yarn.js config`` at import), skipped;
- ``without the hub``: the hub's handlers, metrics and database layer, stood in for or deferred
  (``campushub.server.singleuser.without_the_hub()``);
- ``campushub-singleuser``: all three, as ``campushub.server.singleuser.diet()`` does.

    .venv/bin/python benchmarks/imports.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

IMPORTS = "import jupyterhub.singleuser.extension, jupyterlab.labapp, jupyter_server_terminals\n"
NO_RFC3987 = "import sys; sys.modules['rfc3987_syntax'] = None\n"
NO_NODE = "import jupyterlab.commands as c; c._yarn_config = lambda logger: {'yarn config': {}, 'npm config': {}}\n"
VARIANTS = {
    "baseline": "",
    "no rfc3987-syntax": NO_RFC3987,
    "no node": NO_NODE,
    "without the hub": "from campushub.server import singleuser; singleuser.without_the_hub()\n",
    "campushub-singleuser": "from campushub.server import singleuser; singleuser.diet()\n",
}


def run(code: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def machine_speed(repeat: int = 3) -> float:
    """The CPU seconds a cold ``campushub-singleuser`` spends importing (the median of ``repeat``): how fast this
    machine runs Python now. The same commands ran 10-25% slower on some days than on others here, so other
    benchmarks print it beside their figures."""
    return statistics.median(run(VARIANTS["campushub-singleuser"] + IMPORTS)[1] for _ in range(repeat))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    results = {}
    for name, prelude in VARIANTS.items():
        runs = [run(prelude + IMPORTS) for _ in range(args.repeat)]
        results[name] = {"wall": statistics.median(w for w, _ in runs), "cpu": statistics.median(c for _, c in runs)}
        print(f"{name:22} wall {results[name]['wall']:.2f} s  cpu {results[name]['cpu']:.2f} s", flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
