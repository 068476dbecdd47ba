"""The warehouse benchmark keeps working as the warehouses evolve (tiny sizes; prints, asserts no time)."""

from __future__ import annotations

import json
import os

import pytest

from benchmarks import warehouse_bench


def test_duckdb_phases_run_and_commit_every_row(tmp_path):
    phases = dict(warehouse_bench.bench_duckdb(str(tmp_path), rows=3000, days=3, shard=1000))
    assert set(phases) == {"stage (Parquet files)", "commit, new keys (load+checks+merge)", "commit, same keys again (re-run)"}


@pytest.mark.integration
def test_bigquery_phases_run_against_the_emulator(tmp_path, bigquery_emulator):
    phases = dict(warehouse_bench.bench_bigquery(str(tmp_path), rows=3000, days=3, shard=1000, endpoint=bigquery_emulator.endpoint))
    assert {"load (new keys)", "merge (new keys)", "merge (same keys again (re-run))"} <= set(phases)
    assert all(seconds >= 0 for seconds in phases.values())


def test_adapter_parse_benchmark_parses_every_source_without_dead_letters():
    from benchmarks import adapters_bench
    from touchline.transforms import channels

    results = adapters_bench.bench_parse(40)
    assert [name for name, _, _ in results] == [c.name for c in channels.BUILTIN]
    assert all(n == 40 and seconds >= 0 for _, n, seconds in results)


def test_pipeline_benchmark_floor_and_prefixes_run_on_tiny_data(tmp_path, capsys):
    """The pipeline benchmark's floor and graph prefixes build and run (figures printed, no time asserted)."""
    from benchmarks import pipeline_bench

    data, records, _ = pipeline_bench.ensure_data(str(tmp_path / "data"), 400)
    assert records > 300
    for kind in ("floor", "coarse_floor", "dedup"):
        work = tmp_path / kind
        work.mkdir()
        assert pipeline_bench.run_one(kind, data, "in_memory", 1, str(work))["seconds"] > 0
    written = list((tmp_path / "floor" / "floor").glob("floor*.jsonl"))
    groups = sum(1 for f in written for _ in open(f, encoding="utf-8"))
    assert written and groups > 0
    # the coarse floor groups the same records by the same keys
    coarse = list((tmp_path / "coarse_floor" / "coarse_floor").glob("floor-*.jsonl"))
    assert sum(1 for f in coarse for _ in open(f, encoding="utf-8")) == groups
    assert pipeline_bench.main(["--sizes", "400", "--modes", "in_memory", "--runs", "floor",
                                "--data", str(tmp_path / "data")]) == 0
    assert "in_memory  floor" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.slow
def test_streaming_benchmark_reports_touchpoint_and_score_latency():
    """Tiny size through the real Pub/Sub emulator (the benchmark starts its own)."""
    from benchmarks import streaming_bench

    [result] = streaming_bench.main(["--persons", "4", "--days", "1", "--rates", "0", "--timeout", "300"])
    assert result["touchpoints_seen"] == result["touchpoints_expected"] > 0
    assert result["scored_touchpoints"] > 0 and result["score_latency_p50_s"] >= 0 and result["events_per_s"] > 0


def test_steady_benchmark_runs_consecutive_days_into_one_warehouse(tmp_path, capsys):
    """Two daily runs of a tiny split feed: the second reads stored state, the stored history grows."""
    from benchmarks import steady_bench

    out = tmp_path / "days.json"
    assert steady_bench.main(["--days", "2", "--per_day", "300", "--data", str(tmp_path / "data"), "--mode", "in_memory",
                              "--warehouse", str(tmp_path / "w.duckdb"), "--json", str(out)]) == 0
    assert "day 2 / day 2" in capsys.readouterr().out
    first, second = json.loads(out.read_text())["days"]
    assert first["state_rows"] == 0 < second["state_rows"]
    assert 0 < first["touchpoints"] < second["touchpoints"] and second["read"] > 0

    # the second day again, on a copy of the first day's warehouse: the same figures of stored state
    kept = tmp_path / "day1.duckdb"
    assert steady_bench.main(["--days", "2", "--only_days", "1", "--per_day", "300", "--data", str(tmp_path / "data"),
                              "--mode", "in_memory", "--warehouse", str(kept)]) == 0
    again = tmp_path / "again.json"
    assert steady_bench.main(["--days", "2", "--per_day", "300", "--data", str(tmp_path / "data"), "--mode", "in_memory",
                              "--first_day", "2", "--start_from", str(kept), "--warehouse", str(tmp_path / "copy.duckdb"),
                              "--json", str(again)]) == 0
    [redo] = json.loads(again.read_text())["days"]
    assert (redo["day"], redo["state_rows"], redo["touchpoints"]) == (second["day"], second["state_rows"], second["touchpoints"])
    assert os.path.getsize(kept) > 0 and "   2  " in capsys.readouterr().out

