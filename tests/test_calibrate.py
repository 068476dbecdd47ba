"""``touchline calibrate`` as a person meets it: a model file, a report, and actionable errors."""

from __future__ import annotations

import pytest

from tests.experience_harness import load_touchpoints, parsed_sample
from touchline.pipelines.cli import main
from touchline.transforms.scoring.model import load_model


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    tps, _ = parsed_sample(300, 14, 3)
    path = str(tmp_path_factory.mktemp("calibrate") / "touchline.duckdb")
    load_touchpoints(path, tps)
    return path


def calibrate(capsys, *args):
    code = main(["calibrate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_calibrate_writes_a_new_model_and_reports_held_out_accuracy(warehouse, tmp_path, capsys):
    out = str(tmp_path / "calibrated.yaml")
    code, stdout, stderr = calibrate(capsys, "--warehouse", warehouse, "--from_date", "2026-10-01",
                                     "--to_date", "2026-10-14", "--out", out, "--new_model_version", "cal-test-1")
    assert code == 0, stderr
    assert "Calibrated scoring model cal-test-1 written to" in stdout
    assert "AUC (negative answer vs not)" in stdout and "Spearman rank correlation" in stdout
    assert "default-1" in stdout and f"--scoring_model {out}" in stdout
    model = load_model(out)
    assert model.model_version == "cal-test-1" and model.curve_scale == 1.0
    assert dict(model.calibration)["base_model"] == '"default-1"'
    assert model.weights() != load_model().weights()
    # the new model is a valid --scoring_model for the next run, and calibrating again needs --force
    code, _, stderr = calibrate(capsys, "--warehouse", warehouse, "--scoring_model", out, "--from_date", "2026-10-01",
                                "--to_date", "2026-10-14", "--out", out)
    assert code == 2 and "already exists" in stderr and "--force" in stderr


@pytest.mark.parametrize("args, needles", [
    (["--from_date", "2026-10-32"], ["--from_date='2026-10-32' is not a date", "YYYY-MM-DD"]),
    (["--from_date", "2026-10-10", "--to_date", "2026-10-01"], ["is after --to_date"]),
    (["--from_date", "2020-01-01", "--to_date", "2020-01-31"], ["no survey answers", "2020-01-01", "--from_date/--to_date"]),
    (["--holdout", "1.5"], ["--holdout must be a fraction"]),
    (["--scoring_modle", "x.yaml"], ["unknown flag --scoring_modle", "did you mean --scoring_model"]),
    (["--journey_gap_hours", "0"], ["--journey_gap_hours must be between"]),
])
def test_mistakes_are_one_clear_message(warehouse, capsys, args, needles):
    code, _, stderr = calibrate(capsys, "--warehouse", warehouse, *args)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in stderr, (needle, stderr)


def test_missing_warehouse_and_broken_model_file(tmp_path, capsys):
    code, _, stderr = calibrate(capsys, "--warehouse", str(tmp_path / "nothing.duckdb"))
    assert code == 2 and "no warehouse at" in stderr and "touchline batch" in stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_version: x\nhalf_life_days: -1\nsignals: {a: {weight: 1, match: [{}]}}\n")
    code, _, stderr = calibrate(capsys, "--warehouse", str(tmp_path / "nothing.duckdb"), "--scoring_model", str(bad))
    assert code == 2 and f"scoring model {bad}: half_life_days: must be greater than 0" in stderr
