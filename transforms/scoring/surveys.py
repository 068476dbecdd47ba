"""Survey answers: observed scores on the 0-100 scale, and NPS / CSAT / CES aggregates.

Mapping of an answer to the 0-100 scale of experience scores (linear over the answer's range)::

    NPS  0-10  (10 = would recommend)  ->  10 * answer
    CSAT 1-5   (5 = very satisfied)    ->  25 * (answer - 1)
    CES  1-7   (7 = very easy)         ->  100 * (answer - 1) / 6

An answer is *negative* (a detractor, in NPS terms) when its observed score is at most 60: NPS 0-6,
CSAT 1-3, CES 1-4. Calibration predicts that.

Aggregates (``survey_aggregates``, one row per UTC day x role x channel) keep additive counts and
sums, so any period rolls up exactly: ``NPS = 100 * (promoters - detractors) / nps_responses``
(ratings {9, 10, 6, 8} -> 2 promoters, 1 detractor of 4 -> NPS 25).
"""

from __future__ import annotations

import apache_beam as beam

#: Valid answer range per survey kind.
SURVEY_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
#: Observed scores at or below this are negative answers (NPS detractors, CSAT 1-3, CES 1-4).
NEGATIVE_AT_MOST = 60.0

_STATS = ("responses", "nps_responses", "promoters", "passives", "detractors", "csat_responses", "csat_sum",
          "csat_satisfied", "ces_responses", "ces_sum", "ces_easy")


def observed_score(kind: str | None, answer: int | None) -> float | None:
    """A survey answer on the 0-100 scale, or None if it is not a valid answer of a known kind."""
    if kind not in SURVEY_RANGES or answer is None or isinstance(answer, bool):
        return None
    low, high = SURVEY_RANGES[kind]
    if not low <= answer <= high:
        return None
    return (answer - low) * 100.0 / (high - low)


def is_negative(observed: float) -> bool:
    return observed <= NEGATIVE_AT_MOST


def nps(promoters: int, detractors: int, responses: int) -> float | None:
    """Net Promoter Score, -100..100 (None without responses)."""
    if responses <= 0:
        return None
    return 100.0 * (promoters - detractors) / responses


def answer_stats(kind: str, answer: int) -> tuple[int, ...]:
    """The additive counters (in ``_STATS`` order) one valid answer contributes."""
    if kind == "nps":
        return (1, 1, int(answer >= 9), int(7 <= answer <= 8), int(answer <= 6), 0, 0, 0, 0, 0, 0)
    if kind == "csat":
        return (1, 0, 0, 0, 0, 1, answer, int(answer >= 4), 0, 0, 0)
    return (1, 0, 0, 0, 0, 0, 0, 0, 1, answer, int(answer >= 5))


def aggregate_row(survey_date: int, role: str, channel: str, stats: tuple[int, ...]) -> dict:
    """A ``survey_aggregates`` row from summed counters."""
    row = {"survey_date": survey_date, "role": role, "channel": channel, **dict(zip(_STATS, stats))}
    row["nps"] = nps(row["promoters"], row["detractors"], row["nps_responses"])
    n = row["csat_responses"]
    row["csat_mean"] = row["csat_sum"] / n if n else None
    row["csat_satisfied_share"] = row["csat_satisfied"] / n if n else None
    n = row["ces_responses"]
    row["ces_mean"] = row["ces_sum"] / n if n else None
    return row


def add_stats(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b))


class SumStats(beam.CombineFn):
    """Sums partial counters (in ``_STATS`` order), e.g. one partial per batch of touchpoints
    (lifted: partial sums before the shuffle as well)."""

    def create_accumulator(self):
        return (0,) * len(_STATS)

    def add_input(self, acc, stats):
        return add_stats(acc, stats)

    def merge_accumulators(self, accumulators):
        out = (0,) * len(_STATS)
        for acc in accumulators:
            out = add_stats(out, acc)
        return out

    def extract_output(self, acc):
        return acc


def answer_key(touchpoint: dict) -> tuple | None:
    """The (event_date, role, channel) group of a touchpoint's valid survey answer, or None."""
    if observed_score(touchpoint.get("survey_kind"), touchpoint.get("survey_score")) is None:
        return None
    return (touchpoint["event_date"], touchpoint["role"], touchpoint["channel"])


def partial_stats(touchpoints) -> dict[tuple, tuple[int, ...]]:
    """Summed counters per (event_date, role, channel) of the valid answers among ``touchpoints``."""
    out: dict[tuple, tuple[int, ...]] = {}
    for tp in touchpoints:
        key = answer_key(tp)
        if key is None:
            continue
        add = answer_stats(tp["survey_kind"], tp["survey_score"])
        out[key] = add if key not in out else add_stats(out[key], add)
    return out


class AggregateSurveys(beam.PTransform):
    """Partial counters ``((event_date, role, channel), stats)`` (see :func:`partial_stats`; every
    valid answer of distinct event_ids counted once) -> ``survey_aggregates`` rows. Give it all the
    answers of the days to aggregate (a day's row is replaced as a whole on merge)."""

    def expand(self, partials):
        return (
            partials
            | "SumAnswers" >> beam.CombinePerKey(SumStats())
            | "ToRows" >> beam.MapTuple(lambda key, stats: aggregate_row(*key, stats))
        )
