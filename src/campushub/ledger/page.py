"""The admin page ``/hub/campushub/usage``: the usage report with charts (Chart.js from Debian's libjs-chart.js),
for admins only (JupyterHub's ``admin-ui`` scope, as its own admin page), and its CSV."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import needs_scope
from sqlalchemy import create_engine
from tornado import web

from .report import GROUPINGS, ReportError, report

PATH = r"/campushub/usage"
CHART_PATH = r"/campushub/chart.js"
#: Chart.js as Debian's libjs-chart.js installs it
CHART_JS = Path("/usr/share/javascript/chart.js/chart.min.js")


@functools.cache
def _engine(url: str):
    return create_engine(url)


def usage(url: str, since: str | None, until: str | None, by: str, group: str | None) -> dict:
    """The report by ``by`` and what the charts show, from one read of the ledger."""
    with _engine(url).connect() as connection:
        found = report(connection, since, until, by, group or None)
    charts = {"per_day": "day", "by_group": "group", "by_profile": "profile"}
    return {"report": found, "charts": {name: found.summary(by) for name, by in charts.items()}}


class UsageHandler(BaseHandler):
    """The report for admins: a form for the range and grouping, three charts, the table; ``format=csv`` downloads
    it."""

    @web.authenticated
    @needs_scope("admin-ui")
    async def get(self):
        args = {name: self.get_argument(name, None) for name in ("since", "until", "by", "group")}
        args["by"] = args["by"] or "group"
        url = self.db.get_bind().url
        try:
            found = await asyncio.to_thread(usage, url.render_as_string(hide_password=False), **args)
        except ReportError as e:
            self.set_status(400)
            html = await self.render_template("usage.html", error=str(e), form=args, groupings=GROUPINGS)
            return self.finish(html)
        made = found["report"]
        if self.get_argument("format", "") == "csv":
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", f'attachment; filename="usage-{made.since}-{made.until}.csv"')
            return self.finish(made.as_csv())
        html = await self.render_template(
            "usage.html",
            error="",
            form={**args, "since": str(made.since), "until": str(made.until)},
            groupings=GROUPINGS,
            report=made,
            totals=made.totals(),
            # in a <script type="application/json">: nothing in it may close the element
            charts=json.dumps(found["charts"]).replace("<", "\\u003c"),
            charts_available=CHART_JS.is_file(),
        )
        self.finish(html)


class ChartJsHandler(BaseHandler):
    """Debian's Chart.js, for the usage page (404 where libjs-chart.js is not installed)."""

    @web.authenticated
    async def get(self):
        if not CHART_JS.is_file():
            raise web.HTTPError(404, "Chart.js is not installed here (apt install libjs-chart.js)")
        self.set_header("Content-Type", "application/javascript")
        self.set_header("Cache-Control", "private, max-age=86400")
        self.finish(CHART_JS.read_bytes())


HANDLERS = [(PATH, UsageHandler), (CHART_PATH, ChartJsHandler)]
