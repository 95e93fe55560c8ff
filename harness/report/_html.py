"""``report.html``: one self-contained page about one run, to open from disk or attach to a ticket.

Nothing is fetched: the CSS is inline, the plots are PNG data URLs, and a Content Security
Policy forbids every other source. Every piece of text from the run is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from urllib.parse import quote

from harness.model import LoadSummary, RunRecord, SloResult
from harness.report._format import iso, objective, seconds, slo_value
from harness.report._plots import PanelJson, panel_png, read_series, timeline_png
from harness.util.errors import ConfigError

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
  margin: 0 auto; padding: 1.5em 2em 3em; max-width: 1120px; }
h1 { font-size: 1.5em; margin: 0 0 .3em; }
h2 { font-size: 1.15em; margin: 1.6em 0 .5em; border-bottom: 1px solid #ddd; padding: .2em 0; }
h3 { font-size: 1em; margin: 1em 0 .2em; }
header { display: flex; justify-content: space-between; align-items: flex-start; gap: 2em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .1em 1em; margin: 0; }
dl.meta dt { color: #666; }
dl.meta dd { margin: 0; font-family: ui-monospace, monospace; }
.badge { font-size: 2em; font-weight: 700; padding: .35em .8em; border-radius: .3em;
  color: #fff; text-align: center; white-space: nowrap; }
.badge small { display: block; font-size: .4em; font-weight: 400; }
.badge.PASS { background: #1a7f37; }
.badge.FAIL { background: #cf222e; }
.badge.INCONCLUSIVE { background: #9a6700; }
.badge.INVALID { background: #6e40c9; }
.badge.SKIPPED { background: #6e7781; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { white-space: nowrap; }
td.v { font-weight: 700; }
td.v.PASS { color: #1a7f37; }
td.v.FAIL { color: #cf222e; }
td.v.INCONCLUSIVE { color: #9a6700; }
td.v.INVALID { color: #6e40c9; }
td.v.SKIPPED { color: #6e7781; }
td.detail { color: #444; font-size: .92em; }
figure { margin: .4em 0 1em; }
img { max-width: 100%; height: auto; }
.note { color: #666; }
ul.errors li { color: #cf222e; font-family: ui-monospace, monospace; white-space: pre-wrap; }
"""


def write_html(run: RunRecord, *, series_path: Path | None, out: Path) -> Path:
    """Write the run's page at ``out`` (atomically) and return ``out``.

    ``series_path`` is the run's ``series.json``; without it, or when it is missing, the page
    says so in place of the plots. Artifact links are relative, so keep ``out`` in the run's
    directory.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(render_html(run, series_path=series_path), encoding="utf-8")
    partial.replace(out)
    return out


def render_html(run: RunRecord, *, series_path: Path | None) -> str:
    """Return the run's page as one HTML document."""
    sections = [
        _header(run),
        _slo_section(run),
        _fault_section(run),
        _plot_section(run, series_path),
        _load_section(run.load),
        _errors_section(run.errors),
        _artifacts_section(run.artifacts),
    ]
    title = escape(f"{run.verdict} · run {run.run_id} · {run.profile}")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>\n"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">\n"
        f"<title>{title}</title>\n<style>{CSS}</style></head>\n<body>\n"
        + "\n".join(section for section in sections if section)
        + "\n</body></html>\n"
    )


def _header(run: RunRecord) -> str:
    meta = [
        ("profile", run.profile),
        ("target", run.target),
        ("started", iso(run.started_at)),
        ("ended", iso(run.ended_at)),
        ("duration", seconds(run.ended_at - run.started_at)),
    ]
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in meta)
    verdict = escape(str(run.verdict))
    return (
        f"<header><div><h1>Run {escape(run.run_id)}</h1><dl class='meta'>{rows}</dl></div>"
        f"<div id='verdict' class='badge {verdict}'>{verdict}"
        f"<small>exit code {int(run.exit_code)}</small></div></header>"
    )


def _slo_section(run: RunRecord) -> str:
    if not run.slos:
        return "<h2>SLOs</h2><p class='note'>No SLO was judged.</p>"
    rows = [_slo_row(result) for result in run.slos]
    head = ["SLO", "window", "value", "objective", "verdict", "detail"]
    html = "<h2>SLOs</h2>" + _table(head, rows, table_id="slos", numeric=(2, 3))
    if run.regressions:
        rows = [_slo_row(result) for result in run.regressions]
        html += "<h2>Against history</h2>" + _table(
            ["comparison", *head[1:]], rows, table_id="regressions", numeric=(2, 3)
        )
    return html


def _slo_row(result: SloResult) -> str:
    verdict = escape(str(result.verdict))
    cells = [
        f"<td class='name'>{escape(result.name)}</td>",
        f"<td>{escape(result.window.name)}</td>",
        f"<td class='num'>{escape(slo_value(result, result.value))}</td>",
        f"<td class='num'>{escape(objective(result))}</td>",
        f"<td class='v {verdict}'>{verdict}</td>",
        f"<td class='detail'>{escape(result.detail)}</td>",
    ]
    return f"<tr class='slo'>{''.join(cells)}</tr>"


def _fault_section(run: RunRecord) -> str:
    picture = timeline_png(run)
    image = "" if picture is None else _figure("Phases and faults", picture)
    if not run.faults:
        return f"<h2>Timeline</h2>{image}<p class='note'>No fault was injected.</p>"
    rows = []
    for fault in run.faults:
        offset = "not applied" if fault.injected_at is None else _offset(run, fault.injected_at)
        status = escape(str(fault.status))
        cells = [
            escape(fault.name),
            escape(fault.experiment),
            escape(offset),
            escape("not recovered" if fault.recovery_s is None else seconds(fault.recovery_s)),
        ]
        rows.append(
            "<tr class='fault'>" + "".join(f"<td>{cell}</td>" for cell in cells)
            + f"<td class='v {status}'>{status}</td>"
            + f"<td class='detail'>{escape(fault.detail)}</td></tr>"
        )  # fmt: skip
    head = ["fault", "experiment", "injected", "recovery", "status", "detail"]
    return f"<h2>Timeline</h2>{image}" + _table(head, rows, table_id="faults")


def _plot_section(run: RunRecord, series_path: Path | None) -> str:
    title = "<h2>Indicators</h2>"
    if series_path is None or not series_path.exists():
        return title + "<p class='note'>No series.json was saved for this run, so no plots.</p>"
    try:
        panels = read_series(series_path)["panels"]
    except ConfigError as exc:
        return title + f"<p class='note'>{escape(str(exc))}</p>"
    return title + "".join(_panel(panel, run) for panel in panels)


def _panel(panel: PanelJson, run: RunRecord) -> str:
    errors = [line["error"] for line in panel["series"] if "error" in line]
    notes = "".join(f"<p class='note'>query failed: {escape(error)}</p>" for error in errors)
    return _figure(panel["title"], panel_png(panel, run), panel_id=panel["name"]) + notes


def _load_section(load: LoadSummary | None) -> str:
    if load is None:
        return "<h2>Load</h2><p class='note'>No load was recorded.</p>"
    rows = [_load_row("whole run", load)]
    rows += [_load_row(name, phase) for name, phase in load.by_phase.items()]
    head = ["phase", "requests", "failures", "failed", "p50", "p99", "req/s"]
    return "<h2>Load</h2>" + _table(head, rows, table_id="load", numeric=(1, 2, 3, 4, 5, 6))


def _load_row(name: str, load: LoadSummary) -> str:
    share = 100 * load.failures / load.requests if load.requests else 0.0
    cells = [
        str(load.requests),
        str(load.failures),
        f"{share:.2f} %",
        _ms(load.p50_ms),
        _ms(load.p99_ms),
        "-" if load.rps is None else f"{load.rps:.1f}",
    ]
    numbers = "".join(f"<td class='num'>{escape(cell)}</td>" for cell in cells)
    return f"<tr><td>{escape(name)}</td>{numbers}</tr>"


def _errors_section(errors: Sequence[str]) -> str:
    if not errors:
        return ""
    items = "".join(f"<li>{escape(error)}</li>" for error in errors)
    return f"<h2>Errors</h2><ul class='errors' id='errors'>{items}</ul>"


def _artifacts_section(artifacts: Mapping[str, str]) -> str:
    if not artifacts:
        return ""
    items = "".join(
        f"<li><a href='{escape(quote(path))}'>{escape(name)}</a> "
        f"<span class='note'>{escape(path)}</span></li>"
        for name, path in artifacts.items()
    )
    return f"<h2>Artifacts</h2><ul id='artifacts'>{items}</ul>"


def _table(
    head: Sequence[str], rows: Sequence[str], *, table_id: str, numeric: Sequence[int] = ()
) -> str:
    cells = "".join(
        f"<th class='num'>{escape(h)}</th>" if i in numeric else f"<th>{escape(h)}</th>"
        for i, h in enumerate(head)
    )
    body = "".join(rows)
    return f"<table id='{table_id}'><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _figure(caption: str, data_url: str, *, panel_id: str = "") -> str:
    ident = f" id='panel-{escape(panel_id)}'" if panel_id else ""
    return (
        f"<figure{ident}><h3>{escape(caption)}</h3>"
        f"<img alt='{escape(caption)}' src='{data_url}'></figure>"
    )


def _offset(run: RunRecord, instant: float) -> str:
    return f"+{instant - run.started_at:.1f} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"
