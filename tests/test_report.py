"""touchline report: every section from a real warehouse (DuckDB, and the same SQL on the BigQuery
emulator), graceful degradation, privacy and self-containment of the page, the CLI."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from decimal import Decimal

import pytest

from touchline.pipelines import report
from touchline.pipelines.progress import Progress
from touchline.transforms.warehouse import open_warehouse
from touchline.transforms.warehouse.duckdb import DuckDBWarehouse

from .report_fixture import IDENTITY_DDL, complete, has_identity_schemas, identity_rows, report_warehouse

START = dt.date(2026, 9, 1)


@pytest.fixture(scope="module")
def populated():
    return report_warehouse()


def test_every_section_has_data_and_the_numbers_are_the_warehouse_s(populated, tmp_path):
    path, rows, last = populated
    wh = open_warehouse(path)
    try:
        results = report.collect(wh, "duckdb", START, last)
        states = report.write_report(wh, str(tmp_path / "r.html"), START, last)
    finally:
        wh.close()
    assert all(not r.error and not r.missing for r in results.values()), {k: r.error for k, r in results.items()}
    assert set(states.values()) == {"ok"}, states
    # the numbers are the warehouse's
    assert sum(n for _, _, n in results["sources"].rows) == len(rows)
    ids = {i["id_hash"] for tp in rows for i in tp["identifiers"]}
    assert results["identity_persons"].rows[0] == (len({tp["person_id"] for tp in rows if tp["identifiers"]}), len(ids))
    assert results["merges"].rows[0][0] == 3
    bands = {}
    for role, band, persons in results["score_bands"].rows:
        bands[role] = bands.get(role, 0) + persons
    assert bands == {role: persons for role, persons, _, _ in results["score_roles"].rows}
    page = (tmp_path / "r.html").read_text()
    for chart in ("sources", "score-distribution", "score-trend", "outcomes", "channel-flow", "friction", "drivers",
                  "dead-letters", "identifier-kinds"):
        assert f'data-chart="{chart}"' in page, chart
    assert "No identity data yet" not in page


def test_the_page_is_self_contained_and_has_no_clear_text_pii(populated, tmp_path):
    path, rows, last = populated
    wh = open_warehouse(path)
    try:
        report.write_report(wh, str(tmp_path / "r.html"), START, last)
    finally:
        wh.close()
    page = (tmp_path / "r.html").read_text()
    assert "<script" not in page and not re.search(r'\b(src|href)="(https?:)?//', page)
    assert "@import" not in page and "url(" not in page
    assert not re.search(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", page), "an e-mail address in the report"
    assert not re.search(r"\+\d[\d ()-]{7,}\d", page), "a phone number in the report"
    leaked = {tp["person_id"] for tp in rows} | {i["id_hash"] for tp in rows for i in tp["identifiers"]}
    assert not [v for v in leaked if v in page], "person ids and identifier hashes are never listed"


def test_sections_say_no_data_yet_on_a_fresh_warehouse(tmp_path):
    path = str(tmp_path / "fresh.duckdb")
    wh = DuckDBWarehouse(path)
    try:
        wh.init()
        states = report.write_report(wh, str(tmp_path / "r.html"), START, dt.date(2026, 10, 31))
    finally:
        wh.close()
    page = (tmp_path / "r.html").read_text()
    assert states["identity"] == "missing" and "No identity data yet" in page
    assert states["scores"] in ("empty", "missing") and states["dead_letters"] == "empty"
    assert "error" not in states.values()


def test_identity_section_degrades_when_its_tables_are_empty(tmp_path):
    path = str(tmp_path / "w.duckdb")
    wh = DuckDBWarehouse(path)
    try:
        wh.init()
        if not has_identity_schemas():
            for ddl in IDENTITY_DDL.values():
                wh._connect().execute(ddl)
        states = report.write_report(wh, str(tmp_path / "r.html"), START, dt.date(2026, 10, 31))
    finally:
        wh.close()
    assert states["identity"] == "missing"
    assert "or the table is empty" in (tmp_path / "r.html").read_text()


def test_a_failing_query_is_shown_in_its_section_and_the_page_is_still_written(populated, tmp_path, monkeypatch):
    path, _, last = populated
    original = report.queries

    def broken(dialect, start, end):
        qs = original(dialect, start, end)
        qs["friction"] = report.Query("journeys", "SELECT no_such_column FROM journeys")
        return qs

    monkeypatch.setattr(report, "queries", broken)
    wh = open_warehouse(path)
    try:
        states = report.write_report(wh, str(tmp_path / "r.html"), START, last)
    finally:
        wh.close()
    assert states["friction"] == "error" and states["scores"] == "ok"
    assert "The query failed: BinderException" in (tmp_path / "r.html").read_text()


def _normal(rows):
    def cell(v):
        if isinstance(v, float | Decimal):
            return round(float(v), 6)
        if isinstance(v, dt.datetime):
            return v.replace(tzinfo=None).isoformat()
        if isinstance(v, dt.date):
            return v.isoformat()
        return v
    return [tuple(cell(v) for v in r) for r in rows]


@pytest.mark.integration
def test_the_same_queries_run_on_bigquery_with_the_same_results(populated, bigquery_emulator):
    """Common-subset SQL: the report's queries on the BigQuery emulator give DuckDB's numbers."""
    from touchline import schemas
    from touchline.schemas.rows import converter

    from .emulators import new_dataset

    path, touchpoints, last = populated
    tables = ["touchpoints", "dead_letters", "pipeline_runs", "journeys", "person_scores_daily", "person_scores_current"]
    source = DuckDBWarehouse(path)
    data = {}
    try:
        con = source._connect()
        for table in tables:
            spec = schemas.table_schema(table)
            convert = converter(spec)
            cursor = con.execute(f'SELECT {", ".join(chr(34) + c + chr(34) for c in spec.columns)} FROM "{table}"')
            names = [d[0] for d in cursor.description]
            data[table] = [convert(dict(zip(names, r))) for r in cursor.fetchall()]
    finally:
        source.close()
    bq = open_warehouse(bigquery_emulator.url(new_dataset("report")))
    empty = tempfile.mkdtemp()
    try:
        bq.init()
        identity = identity_rows(touchpoints)
        if has_identity_schemas():
            data.update({t: complete(t, r) for t, r in identity.items()})
        else:
            client = bigquery_emulator.client()
            for table, ddl in IDENTITY_DDL.items():
                client.query(ddl.replace("VARCHAR", "STRING").replace(f"TABLE {table}", f"TABLE `{bq.project}.{bq.dataset}.{table}`")).result()
                client.insert_rows_json(f"{bq.project}.{bq.dataset}.{table}", identity[table])
        # derived tables are written per recompute scope: all of each person's rows, from day 0
        persons = sorted({r["person_id"] for table in ("journeys", "person_scores_daily", "person_scores_current")
                          for r in data[table]})
        from pathlib import Path

        from .test_warehouse_bigquery import stage

        stage(Path(empty), schemas.RECOMPUTE_SCOPE, [{"person_id": p, "from_date": 0} for p in persons])
        bq.commit(empty, [schemas.RECOMPUTE_SCOPE], rows=data)
        on_bigquery = report.collect(bq, "bigquery", START, last)
    finally:
        bq.close()
        shutil.rmtree(empty, ignore_errors=True)
    wh = open_warehouse(path)
    try:
        on_duckdb = report.collect(wh, "duckdb", START, last)
    finally:
        wh.close()
    assert {k: r.error for k, r in on_bigquery.items() if r.error or r.missing} == {}
    for key in on_duckdb:
        if key == "runs":  # finished_at precision differs by engine; the ids must agree
            assert [r[0] for r in on_bigquery[key].rows] == [r[0] for r in on_duckdb[key].rows]
            continue
        assert _normal(on_bigquery[key].rows) == _normal(on_duckdb[key].rows), key


def test_progress_lines_are_few_and_testable():
    import io

    ticks = iter([0.0, 0.5, 2.0, 2.5])
    out = io.StringIO()
    progress = Progress(2, out, enabled=True, heartbeat=0, clock=lambda: next(ticks))
    with progress.phase("querying"):
        pass
    with pytest.raises(RuntimeError), progress.phase("rendering"):
        raise RuntimeError("boom")
    assert out.getvalue().splitlines() == ["[1/2] querying ...", "[1/2] querying: done in 0.5 s",
                                           "[2/2] rendering ...", "[2/2] rendering: failed in 0.5 s"]


def test_heartbeat_while_a_phase_runs():
    import io
    import threading

    out = io.StringIO()
    release = threading.Event()
    progress = Progress(1, out, enabled=True, heartbeat=0.01)
    with progress.phase("pipeline"):
        release.wait(0.2)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/1] pipeline ..." and lines[-1].startswith("[1/1] pipeline: done in")
    assert any("still running" in line for line in lines[1:-1])


def test_cli_report(populated, tmp_path):
    path, _, last = populated
    out = tmp_path / "report.html"
    cmd = [sys.executable, "-m", "touchline.pipelines.cli", "report", "--warehouse", path, "--out", str(out),
           "--from_date", str(START), "--to_date", str(last)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout and "<svg" in out.read_text()
    assert "[1/2] querying the warehouse ..." in result.stderr and "[2/2] rendering the report: done" in result.stderr
    quiet = subprocess.run([sys.executable, "-m", "touchline.pipelines.cli", "--quiet", *cmd[3:]], capture_output=True,
                           text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == ""
    for args, needle in ((["--warehouse", str(tmp_path / "none.duckdb")], "does not exist"),
                         (["--warehouse", path, "--from_date", "2026-31-01"], "is not a date"),
                         (["--warehouse", path, "--out", str(tmp_path / "no" / "r.html")], "of --out does not exist")):
        bad = subprocess.run([sys.executable, "-m", "touchline.pipelines.cli", "report", *args], capture_output=True,
                             text=True, timeout=300)
        assert bad.returncode == 2 and needle in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
