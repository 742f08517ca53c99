"""The sessions ledger under a year of a 1,000-user center (a benchmark, not a test).

Makes 200,000 ended sessions (1,000 users in 40 groups, four profiles, over 365 days) in a real hub's SQLite
database, then times, each as the median of ``--repeat`` runs:

- ``report``: ``campushub report --by group`` for a semester (the last 120 days), the whole command (Python's
  start, the site file, the query, the table);
- ``report-year``: the same for the whole year;
- ``page``: the admins' usage page for that semester, by group (``/hub/campushub/usage``), from the request to
  the last byte (its charts are drawn by the browser afterwards).

Failures are counted with their reasons; the figures go to the JSON file and docs/benchmarks.md. Whether the
ledger slows starts down is measured by ``benchmarks/spawn.py --profiles local,local-noledger`` (the same
profile, with and without the ledger, in one run).

    .venv/bin/python benchmarks/ledger.py
    .venv/bin/python benchmarks/ledger.py --sessions 200000 --repeat 5
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from harness import CAMPUSHUB, GROUP, Hub, base_site
from harness.ledger import fill

ADMIN = "bench-admin"
SITE = base_site(hub={"admin_users": [ADMIN]})


def timed(step, repeat: int, failures: list) -> float | None:
    """The median seconds of ``step()`` over ``repeat`` runs; a failure is counted with its reason."""
    found = []
    for _ in range(repeat):
        began = time.perf_counter()
        try:
            step()
        except Exception as e:  # noqa: BLE001 (counted, with its reason)
            failures.append(f"{getattr(step, '__name__', 'step')}: {type(e).__name__}: {e}"[:300])
            continue
        found.append(time.perf_counter() - began)
    return round(statistics.median(found), 3) if found else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=200_000, help="sessions to make (default 200000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (default 3)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ledger.json"))
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="campushub-ledger-bench-"))
    folder.chmod(0o755)
    hub = Hub(folder / "hub", SITE)
    failures: list[str] = []
    result: dict = {"sessions": args.sessions, "repeat": args.repeat}
    try:
        hub.start()  # makes the database and its ledger
        hub.stop()
        today = datetime.datetime.now(datetime.UTC).date()
        began = time.perf_counter()
        first = time.time() - 365 * 86400
        fill(f"sqlite:///{hub.state / 'jupyterhub.sqlite'}", args.sessions, first, 365)
        result["fill_s"] = round(time.perf_counter() - began, 1)
        result["database_mb"] = round((hub.state / "jupyterhub.sqlite").stat().st_size / 2**20, 1)
        semester = [f"--since={today - datetime.timedelta(days=119)}", f"--until={today}"]

        def report(*extra):
            def run():
                done = subprocess.run(
                    [CAMPUSHUB, "report", "--config", str(hub.config), "--by", "group", *extra],
                    capture_output=True,
                    text=True,
                    env=hub.env,
                )
                assert done.returncode == 0 and done.stdout.count("\n") > 40, done.stderr[-300:]

            return run

        result["report_s"] = timed(report(*semester), args.repeat, failures)
        result["report_year_s"] = timed(
            report(f"--since={today - datetime.timedelta(days=364)}", f"--until={today}"), args.repeat, failures
        )
        hub.start()
        admin = hub.login(ADMIN, GROUP)
        query = "&".join(a.lstrip("-") for a in semester)

        def page():
            r = hub.get(admin, f"/hub/campushub/usage?by=group&{query}")
            assert r.status_code == 200 and "dept39" in r.text, r.status_code

        page()  # the hub's first read opens its engine
        result["page_s"] = timed(page, args.repeat, failures)
    finally:
        hub.stop()
    result["failures"] = failures
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
