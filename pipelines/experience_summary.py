"""Summary sections about journeys and scores, for the text printed after a run.

``summary_sections(url)`` returns ``[(title, sql, header), ...]`` that :func:`touchline.pipelines.summary.render`
runs against the warehouse (put them in ``RunResult.extra["summary_sections"]``). SQL is written for
the warehouse of ``url`` (DuckDB file or ``bigquery://PROJECT.DATASET``).
"""

from __future__ import annotations

BANDS = ((0, 20), (20, 40), (40, 60), (60, 80), (80, 101))


def _table(url: str, name: str) -> str:
    if url.startswith("bigquery://"):
        return f"`{url.removeprefix('bigquery://')}.{name}`"
    return f'"{name}"'


def _unnest(url: str, column: str, alias: str) -> str:
    if url.startswith("bigquery://"):
        return f"UNNEST({column}) AS {alias}"
    return f"UNNEST({column}) AS u({alias})"


def summary_sections(url: str = "duckdb:") -> list[tuple[str, str, list[str]]]:
    current = _table(url, "person_scores_current")
    journeys = _table(url, "journeys")
    surveys = _table(url, "survey_aggregates")
    bands = ", ".join(f"SUM(CASE WHEN score >= {lo} AND score < {hi} THEN 1 ELSE 0 END)" for lo, hi in BANDS)
    order = "CASE role WHEN 'all' THEN 1 ELSE 0 END, role"
    return [
        (
            "Experience scores per role (latest per person, 0-100, higher is better; all = combined view):",
            f"SELECT role, COUNT(*), ROUND(AVG(score), 1), {bands}, "
            f"ROUND(100 * AVG(CASE WHEN score_source = 'observed' THEN 1.0 ELSE 0.0 END), 1) "
            f"FROM {current} GROUP BY role ORDER BY {order}",
            ["role", "persons", "mean", "0-19", "20-39", "40-59", "60-79", "80-100", "% observed"],
        ),
        (
            "Journeys per role and outcome:",
            f"SELECT role, COUNT(*), "
            + ", ".join(f"SUM(CASE WHEN outcome = '{o}' THEN 1 ELSE 0 END)"
                        for o in ("converted", "resolved", "abandoned", "failed", "engaged"))
            + f", ROUND(100 * AVG(CASE WHEN ARRAY_LENGTH(friction_flags) > 0 THEN 1.0 ELSE 0.0 END), 1) "
            f"FROM {journeys} GROUP BY role ORDER BY role",
            ["role", "journeys", "converted", "resolved", "abandoned", "failed", "engaged", "% with friction"],
        ),
        (
            "Top friction flags:",
            f"SELECT flag, COUNT(*) AS n, COUNT(DISTINCT person_id) FROM {journeys} CROSS JOIN {_unnest(url, 'friction_flags', 'flag')} "
            f"GROUP BY flag ORDER BY n DESC, flag LIMIT 10",
            ["flag", "journeys", "persons"],
        ),
        (
            "Surveys per role and channel (NPS = % promoters - % detractors):",
            f"SELECT role, channel, SUM(nps_responses), "
            f"ROUND(100.0 * (SUM(promoters) - SUM(detractors)) / NULLIF(SUM(nps_responses), 0), 1), "
            f"SUM(csat_responses), ROUND(1.0 * SUM(csat_sum) / NULLIF(SUM(csat_responses), 0), 2), "
            f"SUM(ces_responses), ROUND(1.0 * SUM(ces_sum) / NULLIF(SUM(ces_responses), 0), 2) "
            f"FROM {surveys} GROUP BY role, channel ORDER BY role, channel",
            ["role", "channel", "NPS answers", "NPS", "CSAT answers", "CSAT mean", "CES answers", "CES mean"],
        ),
    ]
