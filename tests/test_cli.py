"""The command line as a person meets it: one actionable message per mistake, never a stack trace."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from touchline.pipelines.sample_data import GenerateConfig, generate


def touchline(*args: str, env: dict | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "TOUCHLINE_HASH_KEY"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "touchline.pipelines.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    generate(GenerateConfig(out_dir=str(out), persons=20, days=2, seed=1))
    return str(out)


def fails_with(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def test_unknown_and_misspelled_flags(tiny):
    fails_with(touchline("batch", "--input", tiny, "--bogus_flag", "1"), "unknown flag --bogus_flag")
    fails_with(touchline("batch", "--input", tiny, "--wharehouse", "x.duckdb"), "did you mean --warehouse")


def test_bad_values(tiny, tmp_path):
    fails_with(touchline("batch", "--input", tiny, "--hash_key_source", "demo", "--logical_date", "2026-13-01",
                         "--warehouse", str(tmp_path / "w.duckdb")), "--logical_date", "YYYY-MM-DD")
    fails_with(touchline("batch", "--input", tiny, "--split_mb", "lots"), "invalid int value: 'lots'")
    fails_with(touchline("generate", "--out", str(tmp_path / "g"), "--persons", "-3"), "--persons")


def test_missing_inputs_and_unknown_channels(tiny, tmp_path):
    common = ["--hash_key_source", "demo", "--warehouse", str(tmp_path / "w.duckdb")]
    fails_with(touchline("batch", *common), "no input given", "--input DIR")
    fails_with(touchline("batch", "--input", str(tmp_path / "nowhere"), *common),
               "no app input files match", "touchline generate")
    fails_with(touchline("batch", "--input", tiny, "--channels", "app,chatt", *common),
               "unknown channel 'chatt'", "app, web, support, transactions")


def test_missing_key_and_bad_warehouses(tiny, tmp_path):
    fails_with(touchline("batch", "--input", tiny, "--warehouse", str(tmp_path / "w.duckdb")),
               "TOUCHLINE_HASH_KEY is not set", "--hash_key_source=demo")
    fails_with(touchline("batch", "--input", tiny, "--hash_key_source", "demo", "--warehouse", "postgres://db"),
               "unknown warehouse", "bigquery://PROJECT.DATASET")
    fails_with(touchline("batch", "--input", tiny, "--hash_key_source", "demo",
                         "--warehouse", str(tmp_path / "missing" / "w.duckdb")), "does not exist")
    fails_with(touchline("batch", "--input", tiny, "--hash_key_source", "demo", "--warehouse", str(tmp_path / "w.duckdb"),
                         "--runner", "DataflowRunner"), "cannot be written from DataflowRunner")


def test_key_from_environment_is_used(tiny, tmp_path):
    result = touchline("batch", "--input", tiny, "--warehouse", str(tmp_path / "w.duckdb"), "--channels", "web",
                       env={"TOUCHLINE_HASH_KEY": "k1"})
    assert result.returncode == 0, result.stderr
    assert "Events read per channel" in result.stdout and "web" in result.stdout


def test_no_command_prints_help():
    result = touchline()
    assert result.returncode == 2 and "demo" in result.stdout and "batch" in result.stdout


def test_demo_runs_end_to_end(tmp_path):
    result = touchline("demo", "--out", str(tmp_path / "demo"), "--persons", "40", "--days", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for needle in ("Events read per channel", "Dead letters by reason", "Rows written this run", "touchpoints",
                   f"Warehouse: duckdb:{tmp_path / 'demo' / 'touchline.duckdb'}"):
        assert needle in out, needle
    # progress on stderr, one line per phase start and end (no heartbeat in a short run)
    assert "[1/4] generating sample data" in result.stderr and "[3/4] summarizing the run: done in" in result.stderr
    report = tmp_path / "demo" / "report.html"
    assert f"Report: {report}" in out and "<svg" in report.read_text()
    again = touchline("demo", "--out", str(tmp_path / "demo"), "--persons", "40", "--days", "3")
    assert again.returncode == 0 and "generating" not in again.stderr  # data reused, re-run idempotent
    assert "[1/4] reusing the sample data" in again.stderr
