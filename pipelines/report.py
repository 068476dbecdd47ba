"""``touchline report``: a self-contained HTML page about the warehouse, for people.

    touchline report --warehouse touchline.duckdb --out report.html [--from_date D --to_date D]

Sections: what the runs read (per source: read, touchpoints, duplicates, dead letters), touchpoints
per source and channel, score distribution per role, score trend over time, journey outcomes,
channel-transition flow (a Sankey of journeys' channel paths), top friction flags and score
drivers, dead letters by source and reason, identity stitching (persons, identifiers per kind,
merges, quarantined identifiers). The page has inline CSS and inline SVG charts only: no script,
no font or library fetched, so it opens offline and can be mailed or archived as one file. It shows
aggregates only (pseudonymous ids are never listed; dead-letter messages are stored redacted).

Every query is SQL of the common subset of DuckDB and BigQuery (run through ``Warehouse.query``,
with the dataset as default in BigQuery); the one dialect difference, UNNEST of an array column,
goes through :func:`unnest`. A table that does not exist yet (identity tables before identity
stitching ran, scores before the experience stage ran) or is empty makes its section say so
instead of failing the report; a query that fails for another reason shows its error in the
section (and the command still writes the page).
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import Any, Callable

from touchline.transforms.warehouse import Warehouse, WarehouseError, open_warehouse

from . import __version__
from . import report_charts as charts
from .options import ConfigError, date_flag, with_bigquery_flags
from .progress import Progress
from .summary import channel_counts

DEFAULT_DAYS = 90
ROLE_ORDER = ("customer", "employee", "partner", "all")
BANDS = [f"{lo}-{lo + 9}" if lo < 90 else "90-100" for lo in range(0, 100, 10)]
MAX_STEPS = 4


def unnest(dialect: str, column: str, alias: str) -> str:
    """``UNNEST(column)`` as a joinable table whose elements are named ``alias`` in both dialects."""
    if dialect == "bigquery":
        return f"UNNEST({column}) AS {alias}"
    return f"UNNEST({column}) AS u_{alias}({alias})"


def _date(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


@dataclass
class Query:
    table: str
    sql: str


def queries(dialect: str, start: dt.date, end: dt.date) -> dict[str, Query]:
    """Every query of the report (SQL of the DuckDB / BigQuery common subset)."""
    window = f"BETWEEN {_date(start)} AND {_date(end)}"
    return {
        "runs": Query("pipeline_runs",
                      f"SELECT run_id, logical_date, status, runner, model_version, finished_at FROM pipeline_runs "
                      f"WHERE logical_date {window} ORDER BY finished_at DESC, run_id LIMIT 10"),
        "run_metrics": Query("pipeline_runs",
                             f"SELECT m.name, SUM(m.value) AS total FROM pipeline_runs CROSS JOIN {unnest(dialect, 'metrics', 'm')} "
                             f"WHERE logical_date {window} GROUP BY m.name ORDER BY m.name"),
        "sources": Query("touchpoints",
                         f"SELECT COALESCE(origin, channel) AS src, channel, COUNT(*) AS n FROM touchpoints "
                         f"WHERE event_date {window} GROUP BY src, channel ORDER BY src, channel"),
        "score_roles": Query("person_scores_current",
                             "SELECT role, COUNT(*) AS persons, AVG(score) AS mean_score, "
                             "AVG(CASE WHEN score_source = 'observed' THEN 1.0 ELSE 0.0 END) AS observed "
                             "FROM person_scores_current GROUP BY role ORDER BY role"),
        "score_bands": Query("person_scores_current",
                             "SELECT role, LEAST(CAST(FLOOR(score / 10) AS INTEGER), 9) AS band, COUNT(*) AS persons "
                             "FROM person_scores_current GROUP BY role, band ORDER BY role, band"),
        "trend": Query("person_scores_daily",
                       f"SELECT score_date, role, AVG(score) AS mean_score, COUNT(*) AS persons FROM person_scores_daily "
                       f"WHERE score_date {window} GROUP BY score_date, role ORDER BY score_date, role"),
        "outcomes": Query("journeys",
                          f"SELECT role, outcome, COUNT(*) AS n FROM journeys WHERE start_date {window} "
                          f"GROUP BY role, outcome ORDER BY role, outcome"),
        "paths": Query("journeys",
                       f"SELECT ARRAY_TO_STRING(channel_path, '>') AS path, COUNT(*) AS n FROM journeys "
                       f"WHERE start_date {window} GROUP BY path ORDER BY n DESC, path LIMIT 500"),
        "friction": Query("journeys",
                          f"SELECT f, COUNT(*) AS journeys, COUNT(DISTINCT person_id) AS persons FROM journeys "
                          f"CROSS JOIN {unnest(dialect, 'friction_flags', 'f')} WHERE start_date {window} "
                          f"GROUP BY f ORDER BY journeys DESC, f LIMIT 12"),
        "drivers": Query("person_scores_current",
                         f"SELECT d.signal, COUNT(*) AS persons, SUM(d.contribution) AS total FROM person_scores_current "
                         f"CROSS JOIN {unnest(dialect, 'top_drivers', 'd')} WHERE role <> 'all' "
                         f"GROUP BY d.signal ORDER BY persons DESC, d.signal LIMIT 12"),
        "dead_letters": Query("dead_letters",
                              f"SELECT channel, reason, COUNT(*) AS n, MIN(error_message) AS example FROM dead_letters "
                              f"WHERE logical_date {window} GROUP BY channel, reason ORDER BY n DESC, channel, reason"),
        "identity_kinds": Query("identity_map",
                                "SELECT kind, COUNT(*) AS identifiers, COUNT(DISTINCT person_id) AS persons "
                                "FROM identity_map GROUP BY kind ORDER BY identifiers DESC, kind"),
        "identity_persons": Query("identity_map", "SELECT COUNT(DISTINCT person_id) AS persons, COUNT(*) AS identifiers FROM identity_map"),
        "merges": Query("person_merges", "SELECT COUNT(*) AS merges, COUNT(DISTINCT new_person_id) AS persons FROM person_merges"),
        "quarantine": Query("identity_quarantine",
                            "SELECT kind, reason, COUNT(*) AS n FROM identity_quarantine GROUP BY kind, reason ORDER BY n DESC, kind, reason"),
    }


@dataclass
class Result:
    rows: list[tuple] = field(default_factory=list)
    missing: bool = False  # the table does not exist
    error: str | None = None


def _missing_table(exc: Exception, table: str) -> bool:
    """Whether a query failed because its table does not exist (DuckDB: "Table with name X does not
    exist"; BigQuery: "Not found: Table P:D.X") -- asking the catalog instead would need
    INFORMATION_SCHEMA, which differs between the engines and is missing from emulators."""
    name = re.escape(table)
    pattern = rf"Table with name {name} does not exist|Not found: Table \S*\b{name}\b|no such table:? {name}\b"
    return re.search(pattern, str(exc), re.IGNORECASE) is not None


def collect(warehouse: Warehouse, dialect: str, start: dt.date, end: dt.date) -> dict[str, Result]:
    out: dict[str, Result] = {}
    absent: set[str] = set()
    for key, q in queries(dialect, start, end).items():
        if q.table in absent:
            out[key] = Result(missing=True)
            continue
        try:
            out[key] = Result(rows=[tuple(r) for r in warehouse.query(q.sql)])
        except Exception as exc:  # noqa: BLE001 -- one broken section must not lose the whole page
            if _missing_table(exc, q.table):
                absent.add(q.table)
                out[key] = Result(missing=True)
            else:
                out[key] = Result(error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    return out


def default_window(warehouse: Warehouse, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The last DEFAULT_DAYS days up to the latest run's logical date (else today)."""
    end = None
    try:
        rows = warehouse.query("SELECT MAX(logical_date) FROM pipeline_runs")
        value = rows[0][0] if rows else None
        end = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)) if value else None
    except Exception:  # noqa: BLE001 -- no runs table yet
        end = None
    end = end or today or dt.datetime.now(dt.timezone.utc).date()
    return end - dt.timedelta(days=DEFAULT_DAYS - 1), end


# ------------------------------------------------------------------------------------ sections
@dataclass
class Section:
    key: str
    title: str
    body: str
    state: str = "ok"  # ok | empty | missing | error


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: list[str], rows: list[list[Any]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="{"num" if i >= numeric_from and isinstance(v, (int, float)) else ""}">'
        f'{_e(f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else v)}</td>'
        for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _note(text: str, state: str) -> str:
    return f'<p class="note {state}">{_e(text)}</p>'


def _unavailable(section: str, results: dict[str, Result], keys: tuple[str, ...], what: str) -> Section | None:
    """A placeholder for section ``section`` when the data of ``keys`` is missing, empty or failed."""
    for key in keys:
        r = results[key]
        if r.error:
            return Section(section, what, _note(f"The query failed: {r.error}", "error"), "error")
    if all(results[k].missing for k in keys):
        return Section(section, what, _note(f"No {what.lower()} yet: the table does not exist in this warehouse.", "missing"), "missing")
    if all(not results[k].rows or results[k].rows == [(0, 0)] for k in keys):
        return Section(section, what, _note(f"No {what.lower()} yet in this period.", "empty"), "empty")
    return None


def _roles(roles) -> list[str]:
    return sorted(set(roles), key=lambda r: (ROLE_ORDER.index(r) if r in ROLE_ORDER else len(ROLE_ORDER), r))


def section_runs(results: dict[str, Result]) -> Section:
    title = "Runs and sources"
    missing = _unavailable("runs", results, ("runs",), title)
    if missing:
        return missing
    per = channel_counts({name: int(total or 0) for name, total in results["run_metrics"].rows})
    rows = [[src, v.get("read", 0), v.get("touchpoints", 0), v.get("duplicates", 0), v.get("dead_letters", 0)]
            for src, v in per.items() if "read" in v]
    parts = [_table(["run", "logical date", "status", "runner", "model", "finished"],
                    [[r[0], str(r[1]), r[2], r[3], r[4] or "", str(r[5])[:19]] for r in results["runs"].rows], 99)]
    if rows:
        rows.append(["total", *[sum(r[i] for r in rows) for i in range(1, 5)]])
        parts.append("<h3>Events read per source (read = touchpoints + duplicates + dead letters)</h3>")
        parts.append(_table(["source", "read", "touchpoints", "duplicates", "dead letters"], rows))
    src = results["sources"]
    if src.rows:
        parts.append("<h3>Touchpoints per source and channel in the period</h3>")
        by: dict[str, dict[str, float]] = defaultdict(dict)
        for source, channel, n in src.rows:
            by[source][channel] = float(n)
        parts.append(charts.stacked_bars("sources", sorted(by), by, label="Touchpoints per source, by channel"))
    return Section("runs", title, "".join(parts))


def section_scores(results: dict[str, Result]) -> Section:
    title = "Experience scores per role"
    missing = _unavailable("scores", results, ("score_roles", "score_bands"), title)
    if missing:
        return missing
    totals = {role: persons for role, persons, _, _ in results["score_roles"].rows}
    roles = _roles(totals)
    counts = {role: [0] * 10 for role in roles}
    for role, band, persons in results["score_bands"].rows:
        counts[role][int(band)] = int(persons)
    shares = {role: [100.0 * n / totals[role] if totals[role] else 0.0 for n in counts[role]] for role in roles}
    tips = {role: [f"{role}, score {BANDS[i]}: {counts[role][i]:,} persons ({shares[role][i]:.1f}%)" for i in range(10)] for role in roles}
    chart = charts.grouped_bars("score-distribution", BANDS, shares, label="Score distribution per role",
                                y_label="% of the role's persons, by current score (0-100, higher is better)",
                                tooltips=tips, percent=True)
    table = _table(["role", "persons", "mean score", "% observed (survey)"],
                   [[r, int(p), float(m), 100.0 * float(o)] for r, p, m, o in sorted(results["score_roles"].rows, key=lambda r: _roles([r[0], *totals]).index(r[0]))])
    return Section("scores", title, chart + table + _note("all = the combined human-experience view, not a sum of the roles.", "hint"))


def section_trend(results: dict[str, Result]) -> Section:
    title = "Score trend"
    missing = _unavailable("trend", results, ("trend",), title)
    if missing:
        return missing
    days = sorted({str(d) for d, _, _, _ in results["trend"].rows})
    roles = _roles(r for _, r, _, _ in results["trend"].rows)
    series: dict[str, list[float | None]] = {role: [None] * len(days) for role in roles}
    for day, role, mean, _ in results["trend"].rows:
        series[role][days.index(str(day))] = float(mean)
    return Section("trend", title, charts.lines("score-trend", days, series, label="Mean score per day and role",
                                                y_label="mean score of persons active that day"))


def section_journeys(results: dict[str, Result]) -> Section:
    title = "Journeys and channel transitions"
    missing = _unavailable("journeys", results, ("outcomes", "paths"), title)
    if missing:
        return missing
    links: dict[tuple[int, str, str], float] = defaultdict(float)
    single = 0
    for path, n in results["paths"].rows:
        steps = [s for s in str(path).split(">") if s][:MAX_STEPS]
        if len(steps) < 2:
            single += int(n)
        for i in range(len(steps) - 1):
            links[(i + 1, steps[i], steps[i + 1])] += float(n)
    outcomes: dict[str, dict[str, float]] = defaultdict(dict)
    for role, outcome, n in results["outcomes"].rows:
        outcomes[role][outcome] = float(n)
    parts = [charts.stacked_bars("outcomes", _roles(outcomes), outcomes, label="Journey outcomes per role")]
    if links:
        parts.append(f"<h3>Channel flow: the first {MAX_STEPS} channels of multi-channel journeys</h3>")
        parts.append(charts.sankey("channel-flow", dict(links), label="Channel transitions of journeys"))
    parts.append(_note(f"{single:,} journeys stayed on one channel." if single else "Every journey crossed channels.", "hint"))
    return Section("journeys", title, "".join(parts))


def section_friction(results: dict[str, Result]) -> Section:
    title = "Friction and score drivers"
    missing = _unavailable("friction", results, ("friction", "drivers"), title)
    if missing:
        return missing
    parts = []
    if results["friction"].rows:
        parts.append("<h3>Top friction flags (journeys that raised them)</h3>")
        parts.append(charts.hbars("friction", [(f, float(j), f"{f}: {j:,} journeys, {p:,} persons") for f, j, p in results["friction"].rows],
                                  label="Top friction flags"))
    if results["drivers"].rows:
        parts.append("<h3>Top drivers of current scores (persons whose top drivers include the signal; bar = summed contribution)</h3>")
        parts.append(charts.hbars("drivers", [(s, float(t), f"{s}: in the top drivers of {n:,} persons, total {t:+.2f}")
                                              for s, n, t in results["drivers"].rows], label="Top score drivers", signed=True))
    return Section("friction", title, "".join(parts) or _note("No friction flags or drivers in this period.", "empty"))


def section_dead_letters(results: dict[str, Result]) -> Section:
    title = "Dead letters"
    r = results["dead_letters"]
    if r.error or r.missing:
        return _unavailable("dead_letters", results, ("dead_letters",), title)
    if not r.rows:
        return Section("dead_letters", title, _note("No dead letters in this period: every record became a touchpoint.", "ok"), "empty")
    parts: dict[str, dict[str, float]] = defaultdict(dict)
    for channel, reason, n, _ in r.rows:
        parts[channel][reason] = float(n)
    chart = charts.stacked_bars("dead-letters", sorted(parts), parts, label="Dead letters per source, by reason")
    table = _table(["source", "reason", "records", "example message (redacted)"], [[c, rs, int(n), (m or "")[:160]] for c, rs, n, m in r.rows[:30]])
    return Section("dead_letters", title, chart + table + _note("The raw payloads are in the dead_letters table (PII replaced by keyed hashes), ready to fix and replay.", "hint"))


def section_identity(results: dict[str, Result]) -> Section:
    title = "Identity stitching"
    keys = ("identity_persons", "identity_kinds", "merges", "quarantine")
    if any(results[k].error for k in keys):
        return _unavailable("identity", results, keys, title)
    if results["identity_persons"].missing or not results["identity_persons"].rows or not results["identity_persons"].rows[0][1]:
        return Section("identity", title, _note("No identity data yet: identity stitching has not written identity_map "
                                                "(or the table is empty) in this warehouse.", "missing"), "missing")
    persons, identifiers = results["identity_persons"].rows[0]
    merges = results["merges"].rows[0][0] if results["merges"].rows else 0
    quarantined = sum(int(n) for _, _, n in results["quarantine"].rows)
    tiles = "".join(f'<div class="tile"><div class="big">{int(v or 0):,}</div><div>{_e(t)}</div></div>'
                    for t, v in (("persons", persons), ("identifiers", identifiers), ("merges", merges),
                                 ("quarantined identifiers", quarantined)))
    parts = [f'<div class="tiles">{tiles}</div>']
    if results["identity_kinds"].rows:
        parts.append(charts.hbars("identifier-kinds", [(k, float(n), f"{k}: {n:,} identifiers of {p:,} persons")
                                                       for k, n, p in results["identity_kinds"].rows], label="Identifiers per kind"))
    if results["quarantine"].rows:
        parts.append("<h3>Quarantined identifiers (not used for linking)</h3>")
        parts.append(_table(["kind", "reason", "identifiers"], [[k, r, int(n)] for k, r, n in results["quarantine"].rows]))
    return Section("identity", title, "".join(parts))


SECTIONS: tuple[Callable[[dict[str, Result]], Section], ...] = (
    section_runs, section_scores, section_trend, section_journeys, section_friction, section_dead_letters, section_identity)


def build_sections(results: dict[str, Result]) -> list[Section]:
    return [build(results) for build in SECTIONS]


def render(sections: list[Section], *, warehouse_url: str, start: dt.date, end: dt.date,
           generated: dt.datetime | None = None) -> str:
    """The page: the template filled with the sections."""
    nav = "".join(f'<a href="#{_e(s.key)}">{_e(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{_e(s.key)}" class="{_e(s.state)}" data-state="{_e(s.state)}"><h2>{_e(s.title)}</h2>{s.body}</section>'
                   for s in sections)
    template = Template(resources.files(__package__).joinpath("report_template.html").read_text(encoding="utf-8"))
    generated = generated or dt.datetime.now(dt.timezone.utc)
    return template.substitute(
        title=_e(f"Touchline report {start} to {end}"),
        warehouse=_e(warehouse_url),
        period=_e(f"{start} to {end}"),
        generated=_e(generated.strftime("%Y-%m-%d %H:%M UTC")),
        version=_e(__version__),
        nav=nav,
        sections=body,
    )


# ---------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warehouse", default="touchline.duckdb", help="DuckDB file or bigquery://PROJECT.DATASET")
    parser.add_argument("--out", default="touchline-report.html", help="HTML file to write (default touchline-report.html)")
    parser.add_argument("--from_date", default=None, help=f"first day shown, YYYY-MM-DD (default: {DEFAULT_DAYS} days before --to_date)")
    parser.add_argument("--to_date", default=None, help="last day shown, YYYY-MM-DD (default: the latest run's logical date)")
    parser.add_argument("--bigquery_endpoint", default=None, help="BigQuery REST endpoint override (an emulator)")
    parser.add_argument("--bigquery_storage_endpoint", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--bigquery_location", default=None, help="BigQuery location of the dataset, e.g. EU")


def write_report(warehouse: Warehouse, out: str, start: dt.date | None = None, end: dt.date | None = None,
                 progress: Progress | None = None) -> dict[str, str]:
    """Query, render and write the report; returns {section key: state}."""
    progress = progress or Progress(0, enabled=False)
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ConfigError(f"folder {folder} of --out does not exist", "create it or choose another --out path")
    dialect = "bigquery" if warehouse.url.startswith("bigquery://") else "duckdb"
    if start is None or end is None:
        default_start, default_end = default_window(warehouse)
        end = end or default_end
        start = start or end - dt.timedelta(days=DEFAULT_DAYS - 1)
    if end < start:
        raise ConfigError(f"--to_date {end} is before --from_date {start}", "swap them")
    with progress.phase("querying the warehouse"):
        results = collect(warehouse, dialect, start, end)
    with progress.phase("rendering the report"):
        sections = build_sections(results)
        page = render(sections, warehouse_url=warehouse.url, start=start, end=end)
        tmp = out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.replace(tmp, out)
    return {section.key: section.state for section in sections}


def run(args, progress: Progress | None = None) -> str:
    url = with_bigquery_flags(args.warehouse, args.bigquery_endpoint, args.bigquery_storage_endpoint, args.bigquery_location)
    if not url.startswith("bigquery://") and not os.path.exists(url.removeprefix("duckdb:")):
        raise ConfigError(f"warehouse {url} does not exist", "run `touchline batch` (or `touchline demo`) first, or check --warehouse")
    start, end = date_flag("--from_date", args.from_date), date_flag("--to_date", args.to_date)
    try:
        warehouse = open_warehouse(url)
        warehouse.check()
    except WarehouseError as exc:
        raise ConfigError(str(exc)) from None
    try:
        states = write_report(warehouse, args.out, start, end, progress)
    finally:
        warehouse.close()
    waiting = [k for k, s in states.items() if s in ("missing", "empty")]
    failed = [k for k, s in states.items() if s == "error"]
    lines = [f"wrote {os.path.abspath(args.out)}"]
    if waiting:
        lines.append(f"  sections without data yet: {', '.join(waiting)}")
    if failed:
        lines.append(f"  sections whose query failed (see the page): {', '.join(failed)}")
    return "\n".join(lines)


__all__ = ["queries", "collect", "build_sections", "render", "write_report", "run", "add_arguments", "unnest", "SECTIONS"]
