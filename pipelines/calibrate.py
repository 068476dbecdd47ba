"""``touchline calibrate``: fit the scoring model's weights to survey answers in the warehouse.

    touchline calibrate --warehouse touchline.duckdb --from_date 2026-10-01 --to_date 2026-10-30 \\
        [--scoring_model base.yaml] [--holdout 0.3] [--seed 7] [--out model.yaml] [--new_model_version NAME]

Reads the attributed touchpoints of the period (plus four half-lives of history before it), computes
for every survey answer the model's signals as the scorer sees them just before the answer (a Beam
pipeline), fits the weights on the answers of a training share of the persons, and writes a new
model file with a new ``model_version``. It prints how well the base model and the calibrated one
predict the held-out persons' answers: AUC of negative answers (NPS 0-6, CSAT 1-3, CES 1-4) vs
the rest, and Spearman's rank correlation between score and answer. See docs/scoring.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from touchline.transforms.experience import MICROS_PER_DAY
from touchline.transforms.scoring.calibration import (RespondentFeatures, answer_from_json, answer_to_json,
                                                      calibrate)
from touchline.transforms.scoring.model import ScoringModel
from touchline.transforms.warehouse import WarehouseError, open_warehouse
from touchline.transforms.warehouse.staging import SnapshotRows

from .options import (ConfigError, ExperienceOptions, TouchlineOptions, date_flag, default_staging_dir, parse_pipeline_args,
                      resolve_experience)
from .runners import batch_pipeline

EPOCH = dt.date(1970, 1, 1)


def add_arguments(parser) -> None:
    """The calibrate command's own flags (pipeline flags like --warehouse are parsed strictly after)."""
    parser.add_argument("--from_date", default=None, help="First day of survey answers to fit (default: 90 days before --to_date).")
    parser.add_argument("--to_date", default=None, help="Last day of survey answers to fit (default: --logical_date or today).")
    parser.add_argument("--holdout", type=float, default=0.3,
                        help="Share of persons held out to compare the models on (default 0.3).")
    parser.add_argument("--seed", type=int, default=7, help="Seed of the held-out split (default 7).")
    parser.add_argument("--out", default=None, help="Where to write the calibrated model (default: ./<model_version>.yaml).")
    parser.add_argument("--new_model_version", default=None, help="model_version of the new model (default: derived).")
    parser.add_argument("--force", action="store_true", help="Overwrite --out if it exists.")


@dataclass
class CalibrationRun:
    model: ScoringModel
    base: ScoringModel
    path: str
    report: dict


def run(argv: list[str], prog: str = "touchline calibrate") -> CalibrationRun:
    parser = argparse.ArgumentParser(prog=prog, add_help=False, allow_abbrev=False)
    add_arguments(parser)
    own, rest = parser.parse_known_args(argv)
    options = parse_pipeline_args(rest, prog)
    base, settings = resolve_experience(options)
    tl = options.view_as(TouchlineOptions)
    today = date_flag("--logical_date", tl.logical_date, dt.datetime.now(dt.timezone.utc).date())
    to_date = date_flag("--to_date", own.to_date, today)
    from_date = date_flag("--from_date", own.from_date, to_date - dt.timedelta(days=89))
    if from_date > to_date:
        raise ConfigError(f"--from_date {from_date} is after --to_date {to_date}", "swap them or widen the period")
    if not 0 < own.holdout < 1:
        raise ConfigError(f"--holdout must be a fraction between 0 and 1, got {own.holdout}", "use e.g. --holdout=0.3")
    if own.out is not None and os.path.exists(own.out) and not own.force:
        raise ConfigError(f"{own.out} already exists", "pass another --out, or --force to overwrite it")
    try:
        warehouse = open_warehouse(tl.warehouse)
        path = getattr(warehouse, "path", None)
        if path is not None and not os.path.exists(path):
            raise ConfigError(f"no warehouse at {path}", "pass the --warehouse that `touchline batch` wrote to")
        warehouse.check()
    except WarehouseError as exc:
        raise ConfigError(str(exc)) from None
    try:
        answers = _answers(warehouse, options, base, settings, from_date, to_date)
    finally:
        warehouse.close()
    if not answers:
        raise ConfigError(
            f"no survey answers of attributed persons between {from_date} and {to_date} in {warehouse.url}",
            "check --from_date/--to_date; touchpoints get a person_id from identity stitching in `touchline batch`")
    try:
        result = calibrate(answers, base, seed=own.seed, holdout=own.holdout, model_version=own.new_model_version)
    except ValueError as exc:
        raise ConfigError(str(exc), "widen --from_date/--to_date to include more survey answers") from None
    out = own.out or f"{result.model.model_version}.yaml"
    if os.path.exists(out) and not own.force:
        raise ConfigError(f"{out} already exists", "pass another --out, or --force to overwrite it")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ConfigError(f"folder {folder} for --out does not exist", "create it or pick another --out")
    with open(out, "w", encoding="utf-8") as fh:
        fh.write(f"# Calibrated by `touchline calibrate` from {base.model_version} on survey answers "
                 f"{from_date}..{to_date}; see the calibration section.\n")
        fh.write(result.model.dump())
    report = dict(result.report, from_date=from_date.isoformat(), to_date=to_date.isoformat())
    return CalibrationRun(result.model, base, out, report)


def _answers(warehouse, options: PipelineOptions, model: ScoringModel, settings, from_date: dt.date, to_date: dt.date):
    warmup = int(math.ceil(4 * model.half_life_days))
    key = hashlib.sha256(json.dumps([warehouse.url, str(from_date), str(to_date), model.fingerprint]).encode()).hexdigest()[:12]
    staging = default_staging_dir(warehouse, options, f"calibrate-{key}")
    if FileSystems.exists(staging) and "://" not in staging:
        shutil.rmtree(staging, ignore_errors=True)
    start = from_date - dt.timedelta(days=warmup)
    where = f"event_date >= DATE '{start.isoformat()}' AND event_date <= DATE '{to_date.isoformat()}'"
    p = batch_pipeline(options)
    (
        p
        | "ReadTouchpoints" >> warehouse.read("touchpoints", staging, where)
        | "TouchpointRows" >> SnapshotRows("touchpoints")
        | "Answers" >> RespondentFeatures(model, settings.gap_micros, (from_date - EPOCH).days * MICROS_PER_DAY,
                                          ((to_date - EPOCH).days + 1) * MICROS_PER_DAY)
        | "ToJson" >> beam.Map(lambda a: json.dumps(answer_to_json(a), sort_keys=True))
        | "WriteAnswers" >> beam.io.WriteToText(FileSystems.join(staging, "answers", "part"), file_name_suffix=".jsonl")
    )
    result = p.run()
    if result.wait_until_finish() != PipelineState.DONE:
        raise RuntimeError(f"the calibration pipeline did not finish (staging kept at {staging})")
    answers = []
    for meta in FileSystems.match([FileSystems.join(staging, "answers", "part*")])[0].metadata_list:
        with FileSystems.open(meta.path) as fh:
            answers += [answer_from_json(json.loads(line)) for line in fh.read().decode("utf-8").splitlines() if line]
    if "://" not in staging:
        shutil.rmtree(staging, ignore_errors=True)
    answers.sort(key=lambda a: (a.person_id, a.role, a.time))
    return answers


def render(run: CalibrationRun) -> str:
    r = run.report
    held = r["held_out"]
    base, new = run.base, run.model
    lines = [
        f"Calibrated scoring model {new.model_version} written to {run.path}",
        f"Survey answers {r['from_date']}..{r['to_date']}: {r['answers']} from {r['persons']} persons "
        f"({r['negative_share']:.0%} negative); fitted on {r['train_answers']}, compared on {r['held_out_answers']} "
        f"answers of {r['held_out_persons']} held-out persons (seed {r['seed']}, {r['holdout']:.0%} of persons)",
        "",
        f"{'held-out accuracy':<32}{base.model_version:>16}{'calibrated':>14}",
        f"{'AUC (negative answer vs not)':<32}{held['default']['auc']:>16.3f}{held['calibrated']['auc']:>14.3f}",
        f"{'Spearman rank correlation':<32}{held['default']['spearman']:>16.3f}{held['calibrated']['spearman']:>14.3f}",
        "",
        "Largest weight changes (logit units: weight / curve scale):",
    ]
    old_w, new_w = base.weights(), new.weights()
    changes = sorted(old_w, key=lambda n: -abs(new_w[n] / new.curve_scale - old_w[n] / base.curve_scale))[:8]
    for name in changes:
        lines.append(f"  {name:<30}{old_w[name] / base.curve_scale:>+8.2f} -> {new_w[name] / new.curve_scale:>+8.2f}")
    if r["uncalibrated"]:
        lines.append(f"Not seen before any training answer (kept): {', '.join(r['uncalibrated'])}")
    lines += ["", f"Score with it: touchline batch ... --scoring_model {run.path}"]
    return "\n".join(lines)


__all__ = ["run", "render", "add_arguments", "CalibrationRun", "ExperienceOptions"]
