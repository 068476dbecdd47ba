"""Calibration: fit signal weights to survey answers, and measure how well scores predict them.

For every survey answer (a *respondent* answer: person, role, time t, observed 0-100), the features
are the model's signals and friction flags as the scorer counts them (daily caps), each with unit
weight, decayed to just before the answer:

    x_s(t) = sum over counted occurrences i of s with t_i < t of  value_i * 2^(-(t - t_i) / H)

so the inferred score at t is exactly ``curve(sum_s w_s * x_s(t))``. A logistic regression of "not
negative" (observed > 60, see :mod:`.surveys`) on x, with an L2 penalty chosen by cross-validation
on the training persons, gives weights ``beta`` and an intercept ``b``; the calibrated model uses
``w_s = beta_s``, ``curve.midpoint = -b`` and ``curve.scale = 1``, so its score is 100 x the
estimated probability that the person would not answer negatively.

Respondents are split by person (a stable hash of person_id and the seed): weights are fitted on
the training persons and both models are compared on the held-out persons with the AUC of
negative-vs-not and Spearman's rank correlation between score and observed answer.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import apache_beam as beam
import numpy as np

from ..journeys import JourneyRules, analyze
from .cumulative import MICROS_PER_DAY, decay_factor
from .daily import contributions, count_day
from .model import SURVEY_SIGNAL, ScoringModel
from .signals import Classifier, Step
from .surveys import is_negative

LAMBDAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass(frozen=True)
class Answer:
    person_id: str
    role: str
    time: int
    kind: str
    observed: float
    features: tuple[tuple[str, float], ...]  # sparse: signals with a non-zero value


def answer_features(person_id: str, role: str, steps: Sequence[Step], model: ScoringModel, gap_micros: int,
                    from_time: int, to_time: int, rules: JourneyRules | None = None) -> list[Answer]:
    """Features of every survey answer of one person in one role with ``from_time <= t < to_time``."""
    journeys = analyze(steps, model, gap_micros, rules)
    flags = [f for j in journeys for f in j.flags]
    caps = model.daily_caps()
    unit = {name: 1.0 for name in caps}
    by_day: dict[int, list] = defaultdict(list)
    for c in contributions(steps, flags):
        by_day[c.time // MICROS_PER_DAY].append(c)
    counted = []
    for day in sorted(by_day):
        counted += count_day(by_day[day], unit, caps)[0]
    half_life = model.half_life_micros
    sums: dict[str, float] = {}
    at = None
    k = 0
    out = []
    for s in steps:
        if s.observed is None or not from_time <= s.time < to_time:
            continue
        while k < len(counted) and counted[k][0] < s.time:
            time, name, value = counted[k]
            if at is not None and time != at:
                factor = decay_factor(time - at, half_life)
                sums = {n: v * factor for n, v in sums.items()}
            at = time
            sums[name] = sums.get(name, 0.0) + value
            k += 1
        factor = decay_factor(s.time - at, half_life) if at is not None else 1.0
        feats = tuple(sorted((n, v * factor) for n, v in sums.items() if v != 0.0))
        out.append(Answer(person_id, role, s.time, s.survey_kind, s.observed, feats))
    return out


def person_answers(person_id: str, touchpoints: Iterable[dict], model: ScoringModel, gap_micros: int,
                   from_time: int, to_time: int, classifier: Classifier | None = None,
                   rules: JourneyRules | None = None) -> list[Answer]:
    """Features of a person's answers in [from_time, to_time), roles separately."""
    classifier = classifier or Classifier(model)
    by_role: dict[str, list[Step]] = defaultdict(list)
    for tp in touchpoints:
        by_role[tp["role"]].append(classifier.step(tp))
    out = []
    for role, steps in sorted(by_role.items()):
        steps.sort()
        out += answer_features(person_id, role, steps, model, gap_micros, from_time, to_time, rules)
    return out


def answer_to_json(answer: Answer) -> dict[str, Any]:
    return {"person_id": answer.person_id, "role": answer.role, "time": answer.time, "kind": answer.kind,
            "observed": answer.observed, "features": [list(f) for f in answer.features]}


def answer_from_json(d: dict[str, Any]) -> Answer:
    return Answer(d["person_id"], d["role"], int(d["time"]), d["kind"], float(d["observed"]),
                  tuple((str(n), float(v)) for n, v in d["features"]))


class _AnswersOfPerson(beam.DoFn):
    def __init__(self, model: ScoringModel, gap_micros: int, from_time: int, to_time: int):
        self._model = model
        self._gap = gap_micros
        self._from = from_time
        self._to = to_time

    def setup(self):
        self._classifier = Classifier(self._model)
        self._rules = JourneyRules(self._model)

    def process(self, element):
        person_id, touchpoints = element
        yield from person_answers(person_id, touchpoints, self._model, self._gap, self._from, self._to,
                                  self._classifier, self._rules)


class RespondentFeatures(beam.PTransform):
    """Attributed touchpoints -> :class:`Answer` s (features of each survey answer in
    [from_time, to_time)); give it the history of at least a few half-lives before from_time."""

    def __init__(self, model: ScoringModel, gap_micros: int, from_time: int, to_time: int):
        super().__init__()
        self._model = model
        self._gap = gap_micros
        self._from = from_time
        self._to = to_time

    def expand(self, touchpoints):
        return (
            touchpoints
            | "Attributed" >> beam.Filter(lambda tp: tp.get("person_id") is not None)
            | "KeyByPerson" >> beam.Map(lambda tp: (tp["person_id"], tp))
            | "GroupByPerson" >> beam.GroupByKey()
            | "AnswerFeatures" >> beam.ParDo(_AnswersOfPerson(self._model, self._gap, self._from, self._to))
        )


# ------------------------------------------------------------------------------------ metrics
def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties averaged."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Probability that a random positive has a higher score than a random negative (ties 1/2)."""
    scores = np.asarray(scores, dtype=float)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson correlation of tie-averaged ranks)."""
    ra, rb = _ranks(np.asarray(a, dtype=float)), _ranks(np.asarray(b, dtype=float))
    ra -= ra.mean()
    rb -= rb.mean()
    denom = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom else float("nan")


# ---------------------------------------------------------------------------------------- fit
def held_out(person_id: str, seed: int, share: float) -> bool:
    digest = hashlib.blake2b(f"{seed}\x00{person_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < share


def design(answers: Sequence[Answer], names: Sequence[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    x = np.zeros((len(answers), len(names)))
    for row, a in enumerate(answers):
        for name, value in a.features:
            if name in index:
                x[row, index[name]] = value
    return x


def fit_logistic(x: np.ndarray, y: np.ndarray, lam: float, prior: np.ndarray | None = None,
                 iterations: int = 50) -> tuple[float, np.ndarray]:
    """(intercept, coefficients) of a logistic regression with an L2 penalty pulling the
    coefficients towards ``prior`` (default 0), by Newton's method; the intercept is free."""
    n, k = x.shape
    xb = np.hstack([np.ones((n, 1)), x])
    center = np.zeros(k + 1)
    if prior is not None:
        center[1:] = prior
    beta = center.copy()
    penalty = np.full(k + 1, lam)
    penalty[0] = 0.0
    for _ in range(iterations):
        z = np.clip(xb @ beta, -30, 30)
        p = 1.0 / (1.0 + np.exp(-z))
        w = p * (1 - p)
        gradient = xb.T @ (p - y) + penalty * (beta - center)
        hessian = (xb * w[:, None]).T @ xb + np.diag(penalty) + 1e-9 * np.eye(k + 1)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    return float(beta[0]), beta[1:]


def _log_loss(x: np.ndarray, y: np.ndarray, b: float, beta: np.ndarray) -> float:
    p = 1.0 / (1.0 + np.exp(-np.clip(b + x @ beta, -30, 30)))
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def _fold(person_id: str, seed: int, folds: int) -> int:
    digest = hashlib.blake2b(f"fold\x00{seed}\x00{person_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % folds


@dataclass
class Calibration:
    model: ScoringModel
    report: dict[str, Any] = field(default_factory=dict)


def inferred_scores(answers: Sequence[Answer], model: ScoringModel) -> np.ndarray:
    weights = model.weights()
    return np.array([model.curve(math.fsum(weights.get(n, 0.0) * v for n, v in a.features)) for a in answers])


def evaluate(answers: Sequence[Answer], model: ScoringModel) -> dict[str, float]:
    scores = inferred_scores(answers, model)
    observed = np.array([a.observed for a in answers])
    not_negative = np.array([not is_negative(a.observed) for a in answers])
    return {"auc": auc(scores, not_negative), "spearman": spearman(scores, observed)}


def calibrate(answers: Sequence[Answer], base: ScoringModel, *, seed: int = 7, holdout: float = 0.3,
              model_version: str | None = None, folds: int = 3) -> Calibration:
    """Fit weights on the training persons' answers; compare with ``base`` on held-out persons."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be a fraction between 0 and 1, got {holdout!r}")
    train = [a for a in answers if not held_out(a.person_id, seed, holdout)]
    test = [a for a in answers if held_out(a.person_id, seed, holdout)]
    names = sorted(base.weights())
    x = design(train, names)
    y = np.array([0.0 if is_negative(a.observed) else 1.0 for a in train])
    if len(train) < 20 or len(test) < 10 or y.min() == y.max():
        raise ValueError(
            f"too few survey answers to calibrate: {len(train)} training and {len(test)} held-out answers "
            f"({int(len(y) - y.sum()) if len(y) else 0} negative); need at least 20 and 10, with both negative and other answers")
    std = x.std(axis=0)
    used = std > 0
    xs = x[:, used] / std[used]
    base_weights = base.weights()
    # the base model's weights in logit units (standardized): the prior calibration shrinks towards
    prior = np.array([base_weights[n] / base.curve_scale for n in names])[used] * std[used]
    fold_of = np.array([_fold(a.person_id, seed, folds) for a in train])
    best = None
    for lam in LAMBDAS:
        losses = []
        for f in range(folds):
            tr, va = fold_of != f, fold_of == f
            if va.sum() == 0 or tr.sum() == 0 or y[tr].min() == y[tr].max():
                continue
            b, beta = fit_logistic(xs[tr], y[tr], lam, prior)
            losses.append(_log_loss(xs[va], y[va], b, beta))
        loss = sum(losses) / len(losses) if losses else float("inf")
        if best is None or loss < best[0] - 1e-12:
            best = (loss, lam)
    lam = best[1]
    b, beta_std = fit_logistic(xs, y, lam, prior)
    coef = np.zeros(len(names))
    coef[used] = beta_std / std[used]
    weights = {}
    uncalibrated = []
    for i, name in enumerate(names):
        if used[i]:
            weights[name] = round(float(coef[i]), 6)
        else:  # never seen before a training answer: keep its effect in logit units
            weights[name] = round(base_weights[name] / base.curve_scale, 6)
            uncalibrated.append(name)
    intercept = float(b)
    digest = hashlib.sha256(repr(sorted(weights.items())).encode() + repr(round(intercept, 6)).encode()).hexdigest()[:8]
    version = model_version or f"{base.model_version}-cal-{digest}"
    before = evaluate(test, base)
    candidate = base.with_changes(model_version=version, weights=weights, midpoint=round(-intercept, 6), scale=1.0)
    after = evaluate(test, candidate)
    report = {
        "base_model": base.model_version,
        "model_version": version,
        "seed": seed,
        "holdout": holdout,
        "answers": len(answers),
        "persons": len({a.person_id for a in answers}),
        "train_answers": len(train),
        "held_out_answers": len(test),
        "held_out_persons": len({a.person_id for a in test}),
        "negative_share": round(sum(is_negative(a.observed) for a in answers) / len(answers), 4),
        "l2_penalty": lam,
        "uncalibrated": uncalibrated,
        "held_out": {"default": before, "calibrated": after},
    }
    meta = {
        "base_model": base.model_version,
        "seed": seed,
        "holdout": holdout,
        "train_answers": len(train),
        "held_out_answers": len(test),
        "l2_penalty": lam,
        "held_out_auc": {"base": round(before["auc"], 4), "calibrated": round(after["auc"], 4)},
        "held_out_spearman": {"base": round(before["spearman"], 4), "calibrated": round(after["spearman"], 4)},
    }
    model = base.with_changes(model_version=version, weights=weights, midpoint=round(-intercept, 6), scale=1.0,
                              calibration=meta,
                              description=f"Calibrated from {base.model_version} on {len(train)} survey answers.")
    return Calibration(model, report)


__all__ = ["Answer", "answer_features", "person_answers", "RespondentFeatures", "answer_to_json", "answer_from_json", "auc", "spearman", "calibrate", "evaluate",
           "held_out", "fit_logistic", "Calibration", "SURVEY_SIGNAL"]
